"""Thin asyncio adapters to the network: DNS (dnspython), the HTTPS policy fetch, SMTP
STARTTLS probes and TLS inspection. They turn library errors into typed outcomes once, here,
so that ``check`` and ``resolve`` only ever see data."""
