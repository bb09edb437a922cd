"""``{% fleet_dashboard %}``: the compliance dashboard on the admin index, for the organisation chosen."""

from __future__ import annotations

from django import template
from django.utils import timezone

from common.db_router import replica_reads
from devices.dashboard import build_dashboard
from fleet.models import Organisation
from fleet.selectors import organisation_ids_for_request

register = template.Library()


@register.inclusion_tag("admin/devices/dashboard.html", takes_context=True)
def fleet_dashboard(context: template.Context) -> dict:
    request = context["request"]
    organisations = Organisation.objects.order_by("name").only("pk", "name")
    if not request.user.is_superuser:
        organisations = organisations.filter(pk__in=organisation_ids_for_request(request))
    organisations = list(organisations)
    if not organisations:
        return {"dashboard": None}
    chosen = request.GET.get("organisation", "")
    selected = next((o for o in organisations if str(o.pk) == chosen), organisations[0])
    with replica_reads():  # the dashboard only reads: the replica may serve it (common.db_router)
        dashboard = build_dashboard(organisation=selected, today=timezone.now().date())
    return {
        "dashboard": dashboard,
        "organisations": organisations,
        "selected": selected,
    }
