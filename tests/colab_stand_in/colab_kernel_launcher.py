"""Stand-in for Colab's kernel launcher: `google.colab`, then ipykernel.

Colab's kernel spec runs `python3 -m colab_kernel_launcher -f {connection_file}`
and the launcher imports `google.colab` before it starts the kernel; this one
does the same and nothing more.
"""

import google.colab  # noqa: F401  (imported at kernel start, as on Colab)
from ipykernel import kernelapp

if __name__ == "__main__":
    kernelapp.launch_new_instance()
