"""Stand-in for Colab's `google.colab`, for the book's Colab simulation.

Colab's kernel imports `google.colab` when it starts; the notebooks' set-up
cell tells Colab from elsewhere by `"google.colab" in sys.modules`, and uses
nothing else of the package. tests/test_colab.py installs this directory into
the simulated runtime, with a `google-colab` distribution that requires what
the real one requires of Colab's kernel stack (colabtools' setup.py).
"""

__version__ = "1.0.0"
