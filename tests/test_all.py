"""The public names promised by the API contract are exported."""

import einopt

API = {"einsum", "contract", "contract_path", "contract_expression", "plan", "Plan",
       "EinsumError", "clear_caches"}


def test_api_names_exported():
    assert API <= set(einopt.__all__)
    for name in einopt.__all__:
        assert hasattr(einopt, name), name


def test_errors_are_value_errors():
    assert issubclass(einopt.EinsumError, ValueError)
    for cls in (einopt.SubscriptError, einopt.ShapeError, einopt.PathError,
                einopt.OperandTypeError):
        assert issubclass(cls, einopt.EinsumError)
    assert issubclass(einopt.OperandTypeError, TypeError)


def test_plan_attributes():
    p = einopt.plan("ij,jk->ik", (2, 3), (3, 4))
    for attr in ("path", "flops", "naive_flops", "speedup", "max_size", "sliced", "code"):
        assert hasattr(p, attr)
    assert p.sliced == ()
