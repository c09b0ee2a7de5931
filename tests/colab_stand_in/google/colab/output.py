"""Stand-in for `google.colab.output`, the front-end's output helpers.

jax imports it when `google.colab` is loaded (its Colab debugger,
jax/_src/debugger/colab_lib.py), so the names must exist; the notebooks never
call them, and here they raise.
"""


def _front_end_only(*args, **kwargs):
    raise NotImplementedError("Colab's front end is not simulated")


eval_js = clear = use_tags = redirect_to_element = _front_end_only
register_callback = _front_end_only
