"""Publishing MTA-STS: plan the policy and DNS records (and, later, serve the policy)."""

from mtasts.publish.plan import Deployment, DnsRecord, plan_deployment

__all__ = ["Deployment", "DnsRecord", "plan_deployment"]
