from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from marketplace.groups.selectors import user_groups
from marketplace.models import Round


def _open_rounds():
    return Round.objects.filter(status=Round.Status.OPEN).order_by("closes_at")[:6]


def home(request):
    return render(request, "home.html", {"open_rounds": _open_rounds()})


@login_required
def dashboard(request):
    return render(request, "dashboard.html", {"groups": user_groups(user=request.user), "open_rounds": _open_rounds()})
