from rest_framework import permissions

from .tenancy import ORG_WIDE_ROLES


class HasOrganization(permissions.BasePermission):
    """An API key, or a signed-in member of an organization. Reps see only what is theirs (later issues)."""

    def has_permission(self, request, view):
        if getattr(request, "organization", None) is None:
            return False
        if request.auth is not None:  # API key
            return True
        return request.user.is_authenticated


class IsOrgWideMember(HasOrganization):
    """API keys and admins/managers/marketers; not reps."""

    def has_permission(self, request, view):
        if not super().has_permission(request, view):
            return False
        return request.auth is not None or request.membership.role in ORG_WIDE_ROLES


class IsOrgAdmin(HasOrganization):
    """API keys (an integration acts for the whole org) and the org's admins."""

    def has_permission(self, request, view):
        if not super().has_permission(request, view):
            return False
        return request.auth is not None or request.membership.role == "admin"
