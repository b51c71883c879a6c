"""Docstring sections shared by several estimators, written once."""


def shared_docs(**sections):
    """Class decorator: replace each ``{name}`` in the class's docstring by
    ``sections[name]`` (numpydoc text, indented for a class docstring)."""
    def fill(cls):
        doc = cls.__doc__
        for name, text in sections.items():
            doc = doc.replace("{" + name + "}", text)
        cls.__doc__ = doc
        return cls

    return fill
