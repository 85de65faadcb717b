from django.urls import include, path
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.response import Response


class Order(serializers.Serializer):
    quantity = serializers.IntegerField(min_value=1)


@api_view(["POST"])
def orders(request):
    Order(data=request.data).is_valid(raise_exception=True)
    return Response({"ok": True})


def broken(request):
    raise RuntimeError("secret internals")


urlpatterns = [
    path("", include("reliability.urls")),
    path("orders", orders),
    path("broken", broken),
]
