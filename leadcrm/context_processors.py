from . import policy


def tenancy(request):
    return {
        "organization": getattr(request, "organization", None),
        "membership": getattr(request, "membership", None),
        "memberships": getattr(request, "memberships", []),
        "can": policy.navigation(request),  # what the menu offers: the policy, not a role name
    }
