"""Bibliography labels that are unique across the whole book.

The `alpha` style labels an entry by author and year ("Fal24") and tells two
such entries apart ("Fal24a", "Fal24b") only when they sit in one bibliography.
Each chapter lists just what it cites, so Isak Falk's two 2024 posts would both
be "Fal24", on different pages, and Sphinx warns of a duplicate label. This
style is `alpha`, except that an entry with a `shortlabel` field in
book/references.bib is labelled by that field.
"""

from pybtex.plugin import register_plugin
from pybtex.style.formatting.alpha import Style as Alpha
from pybtex.style.labels.alpha import LabelStyle as AlphaLabels
from sphinx.application import Sphinx


class Labels(AlphaLabels):
    def format_labels(self, sorted_entries):
        labels = super().format_labels(sorted_entries)
        for entry, label in zip(sorted_entries, labels):
            yield entry.fields.get("shortlabel", label)


class Style(Alpha):
    default_label_style = "book"


def setup(app: Sphinx) -> dict:
    register_plugin("pybtex.style.labels", "book", Labels)
    register_plugin("pybtex.style.formatting", "book", Style)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
