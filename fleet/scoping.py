"""Organisation scoping for the admin, and the settings that keep pages over big tables cheap.

Every tenant row reaches its Organisation through a path (``organisation``, ``device__organisation``).
:class:`OrganisationScopedAdmin` uses that path everywhere the admin reads or writes: the changelist,
the change page looked up by URL, autocomplete, foreign-key choices, list filters and saving.
Permissions come from the Membership role, not from Django's model permissions: a manager may
view, add, change and delete within their organisations, a viewer may only view, and a staff
user without membership sees nothing. Superusers see and do everything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin
from django.contrib.admin.options import TO_FIELD_VAR, IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import models
from django.db.models import Q, QuerySet
from django.utils.functional import cached_property
from django.utils.translation import gettext

from common.forms import EdgeFormMixin, edge_form
from fleet.selectors import organisation_ids_for_request

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse


def is_superuser(request: HttpRequest) -> bool:
    return bool(request.user.is_active and request.user.is_superuser)


def _is_autocomplete(request: HttpRequest) -> bool:
    match = getattr(request, "resolver_match", None)
    return match is not None and match.url_name == "autocomplete"


class OrganisationScopedAdmin(admin.ModelAdmin):
    """A ModelAdmin whose rows belong to one organisation each, reached through ``organisation_path``."""

    #: ORM path from the model to its Organisation; "pk" for Organisation itself.
    organisation_path: str = "organisation"
    #: A row without organisation is public (the manufacturers' OS builds): every member may view it
    #: and pick it in a form, only superusers may write it.
    public_without_organisation: bool = False

    # --- Reading -----------------------------------------------------------------------------
    def scope_filter(self, organisation_ids: list[int]) -> Q:
        lookup = "pk__in" if self.organisation_path == "pk" else f"{self.organisation_path}__in"
        condition = Q(**{lookup: organisation_ids})
        if self.public_without_organisation:
            condition |= Q(**{f"{self.organisation_path}__isnull": True})
        return condition

    def scope_queryset(self, request: HttpRequest, queryset: QuerySet, *, manage: bool = False) -> QuerySet:
        """The rows of ``queryset`` the user may see, or may pick in a form they write (``manage``)."""
        if is_superuser(request):
            return queryset
        return queryset.filter(self.scope_filter(organisation_ids_for_request(request, manage=manage)))

    def get_changelist_instance(self, request: HttpRequest) -> ChangeList:
        # A list filter's value reaches the query: PostgreSQL refuses NUL in text outright (a 500). Refused as
        # any bad filter is (the list says so; an export answers 400).
        if any("\x00" in key or "\x00" in value for key, values in request.GET.lists() for value in values):
            raise IncorrectLookupParameters(gettext("A filter cannot contain the NUL character."))
        return super().get_changelist_instance(request)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # Autocomplete only serves forms, and only managers write forms: offer what they may pick.
        return self.scope_queryset(request, super().get_queryset(request), manage=_is_autocomplete(request))

    def organisation_id_of(self, obj: models.Model) -> int | None:
        """The organisation id of ``obj``, following ``organisation_path`` (a query per unloaded relation)."""
        if self.organisation_path == "pk":
            return obj.pk
        *relations, last = self.organisation_path.split("__")
        target: models.Model | None = obj
        for name in relations:
            target = getattr(target, name, None)
            if target is None:
                return None
        return getattr(target, target._meta.get_field(last).attname)

    # --- Permissions from the Membership role --------------------------------------------------
    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_superuser(request) or bool(organisation_ids_for_request(request))

    def has_view_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        if is_superuser(request):
            return True
        visible = organisation_ids_for_request(request)
        if obj is None:
            return bool(visible)
        organisation_id = self.organisation_id_of(obj)
        if organisation_id is None:
            return self.public_without_organisation and bool(visible)
        return organisation_id in visible

    def _may_write(self, request: HttpRequest, obj: models.Model | None) -> bool:
        if is_superuser(request):
            return True
        managed = organisation_ids_for_request(request, manage=True)
        if obj is None:
            return bool(managed)
        organisation_id = self.organisation_id_of(obj)
        return organisation_id is not None and organisation_id in managed

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._may_write(request, None)

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self._may_write(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self._may_write(request, obj)

    # --- A row outside the user's organisations does not exist ----------------------------------
    def _absent_row_response(self, request: HttpRequest, object_id: str) -> HttpResponse | None:
        """The admin's "does not exist" redirect when ``object_id`` names no row this user may see.

        Django checks the change (on POST) and delete permissions before it looks the row up: where a
        user may change or delete nothing (records, organisations, a viewer), another organisation's
        row would be a 403 while every other page says it does not exist. Look it up first.
        """
        if TO_FIELD_VAR in request.GET or TO_FIELD_VAR in request.POST:
            return None  # a lookup by another field: Django validates that field first
        if self.get_object(request, unquote(object_id)) is not None:
            return None
        return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        if object_id is not None and request.method == "POST" and not self.has_change_permission(request):
            absent = self._absent_row_response(request, object_id)
            if absent is not None:
                return absent
        return super().changeform_view(request, object_id, form_url, extra_context)

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> HttpResponse:
        if not self.has_delete_permission(request):
            absent = self._absent_row_response(request, object_id)
            if absent is not None:
                return absent
        return super().delete_view(request, object_id, extra_context)

    # --- Forms ---------------------------------------------------------------------------------
    def _scoped_admin_for(self, model: type[models.Model]) -> OrganisationScopedAdmin | None:
        related_admin = self.admin_site._registry.get(model)
        return related_admin if isinstance(related_admin, OrganisationScopedAdmin) else None

    def formfield_for_foreignkey(
        self, db_field: models.ForeignKey, request: HttpRequest, **kwargs: Any
    ) -> forms.Field | None:
        related_admin = self._scoped_admin_for(db_field.related_model)
        if related_admin is not None and "queryset" not in kwargs and not is_superuser(request):
            queryset = db_field.related_model._default_manager.using(kwargs.get("using")).all()
            ordering = related_admin.get_ordering(request)
            if ordering:
                queryset = queryset.order_by(*ordering)
            kwargs["queryset"] = related_admin.scope_queryset(request, queryset, manage=True)
        if db_field.name == self.organisation_path and not is_superuser(request):
            # A blank organisation would make the row public, which only superusers may publish.
            kwargs["required"] = True
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)
        if self.organisation_path == "organisation" and not is_superuser(request):
            managed = organisation_ids_for_request(request, manage=True)
            if len(managed) == 1:
                initial.setdefault("organisation", managed[0])
        return initial

    def get_form(self, request: HttpRequest, obj: models.Model | None = None, change: bool = False, **kwargs: Any):
        form_class = super().get_form(request, obj, change, **kwargs)
        model_admin = self

        class OrganisationCheckedForm(EdgeFormMixin, form_class):
            def _post_clean(self) -> None:
                # The instance now holds the submitted values: check them, not the widgets' choices.
                super()._post_clean()
                model_admin.validate_organisations(request, self)

        OrganisationCheckedForm.__name__ = form_class.__name__
        return OrganisationCheckedForm

    def validate_organisations(self, request: HttpRequest, form: forms.ModelForm) -> None:
        """Form errors when the row, or a row it points to, belongs to an organisation the user may not use.

        Everyone, superusers included, is stopped from pointing a row at another organisation's
        data (a device of A in a fleet of B); staff users also from writing outside what they manage.
        """
        instance = form.instance
        organisation_field = self.organisation_path.split("__")[0]
        if organisation_field in form.errors:
            return  # Already refused (not one of the offered choices, or missing): one error is enough.
        organisation_id = self.organisation_id_of(instance)
        if not is_superuser(request) and (
            organisation_id is None or organisation_id not in organisation_ids_for_request(request, manage=True)
        ):
            message = gettext("You do not manage this organisation.")
            form.add_error(organisation_field if organisation_field in form.fields else None, message)
            return
        for field in instance._meta.concrete_fields:
            if not field.is_relation or field.name not in form.cleaned_data or field.name == organisation_field:
                continue
            related_admin = self._scoped_admin_for(field.related_model)
            related = form.cleaned_data[field.name]
            if related_admin is None or related is None:
                continue
            related_organisation_id = related_admin.organisation_id_of(related)
            if related_organisation_id is not None and related_organisation_id != organisation_id:
                form.add_error(field.name, gettext("This belongs to another organisation."))

    def save_model(self, request: HttpRequest, obj: models.Model, form: forms.ModelForm, change: bool) -> None:
        self.check_may_write(request, obj)
        super().save_model(request, obj, form, change)

    def check_may_write(self, request: HttpRequest, obj: models.Model) -> None:
        """Refuses to save a row outside the user's managed organisations, whatever the form let through."""
        if not self._may_write(request, obj):
            raise PermissionDenied


class CatalogueAdmin(admin.ModelAdmin):
    """The shared catalogue (manufacturers, models): every member may view it, only superusers write it."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_superuser(request) or bool(organisation_ids_for_request(request))

    def has_view_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return is_superuser(request)

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return is_superuser(request)

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return is_superuser(request)

    def get_form(self, request: HttpRequest, obj: models.Model | None = None, change: bool = False, **kwargs: Any):
        return edge_form(super().get_form(request, obj, change, **kwargs))


class EdgeInlineMixin:
    """Inline forms follow the edge's rules too (:class:`common.forms.EdgeFormMixin`)."""

    def get_formset(self, request: HttpRequest, obj: models.Model | None = None, **kwargs: Any):
        kwargs.setdefault("form", edge_form(self.form))  # type: ignore[attr-defined]
        return super().get_formset(request, obj, **kwargs)  # type: ignore[misc]


class ScopedRelatedFieldListFilter(admin.RelatedFieldListFilter):
    """A foreign-key filter listing the related rows as the related admin shows them to this user.

    Django's own filter lists the whole related table: every tenant's fleet names in the sidebar,
    and one query per choice when their ``__str__`` follows a relation (a model's manufacturer).
    This one asks the related admin's ``get_queryset`` (scoped) with its ``list_select_related``.
    """

    def has_output(self) -> bool:
        # Django drops a filter with one choice (a manager of one organisation) *after* it took its parameter
        # from the query: ?organisation__id__exact=<another organisation> then filtered nothing, and the list
        # and its exports showed the user's whole organisation. A filter given a value always applies it.
        return bool(self.used_parameters) or super().has_output()

    def field_choices(self, field: models.Field, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        related_model = field.remote_field.model
        related_admin = model_admin.admin_site._registry.get(related_model)
        if related_admin is None:
            return super().field_choices(field, request, model_admin)
        queryset = related_admin.get_queryset(request)
        if isinstance(related_admin.list_select_related, list | tuple) and related_admin.list_select_related:
            queryset = queryset.select_related(*related_admin.list_select_related)
        ordering = self.field_admin_ordering(field, request, model_admin)
        if ordering:
            queryset = queryset.order_by(*ordering)
        attname = field.target_field.attname
        return [(getattr(row, attname), str(row)) for row in queryset]


class CappedCountPaginator(Paginator):
    """Counts at most ``count_cap`` rows, so a changelist never counts a million-row table.

    The count becomes ``SELECT COUNT(*) FROM (SELECT ... LIMIT cap + 1)``: it stops after
    ``cap + 1`` rows whatever the table's size. Beyond the cap the changelist says "more than
    10,000" and offers the first ``cap / list_per_page`` pages; filters and search narrow the rest.
    """

    count_cap = 10_000

    @cached_property
    def _bounded_count(self) -> int:
        if isinstance(self.object_list, QuerySet):
            # Unordered: the database may stop at any cap + 1 rows instead of sorting all of them.
            return self.object_list.order_by()[: self.count_cap + 1].count()
        return len(self.object_list)

    @cached_property
    def count(self) -> int:
        return min(self._bounded_count, self.count_cap)

    @property
    def count_is_capped(self) -> bool:
        return self._bounded_count > self.count_cap


class SortableByChangeList(ChangeList):
    """Honours ``sortable_by`` for ``?o=`` too: Django only hides the other headers, a URL can still sort by them."""

    def get_ordering_field(self, field_name: str) -> Any:
        if self.sortable_by is not None and field_name not in self.sortable_by:
            return None
        return super().get_ordering_field(field_name)


class LargeTableMixin:
    """Changelist settings for tables that grow with the fleet (devices, check-ins, status changes).

    What still counts on a page load: the paginator's capped count above (bounded by its cap).
    Not run: the unfiltered total (``show_full_result_count``) and the per-choice filter counts
    (facets, which would be one aggregate over the whole table per page load).
    """

    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = CappedCountPaginator
    list_per_page = 50

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        # Sorting a big table by a column no index serves sorts all of it on every page load.
        return SortableByChangeList

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # Django's bulk delete loads and lists every cascaded row (each device's whole history)
        # before asking, and "select all" reaches every matching row: unbounded on these tables.
        # One row can still be deleted from its own page; devices are retired, not deleted.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


def adopt_saved_instance(target: models.Model, saved: models.Model) -> None:
    """Makes the admin's unsaved ``target`` the row a service just created as ``saved``.

    The admin goes on with its own instance after ``save_model`` (history entry, messages,
    redirect); when a service creates the row, the admin's instance must become that row.
    """
    for field in saved._meta.concrete_fields:
        setattr(target, field.attname, getattr(saved, field.attname))
    target._state.adding = False
    target._state.db = saved._state.db


class RecordsAdmin(OrganisationScopedAdmin):
    """Rows FleetPatch writes itself (history, aggregates, deliveries): read-only in the admin; only a
    superuser may delete one (a bad import, a delivery to send again)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return is_superuser(request)
