"""Widgets built from the library's declarations, and the app's way of showing errors."""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import streamlit as st

from interpgrad.errors import InterpgradError
from interpgrad.params import Param, check_declarations

__all__ = ["drop_missing_choices", "param_widgets", "readable_errors"]


def _log_steps(param: Param) -> list[float]:
    low = param.low if param.low and param.low > 0 else abs(param.default) / 1000 or 1e-6
    high = param.high if param.high else abs(param.default) * 1000 or 1.0
    values = set()
    for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for mantissa in (1, 2.5, 5, 7.5):
            value = mantissa * 10**exponent
            if low <= value <= high:
                values.add(float(f"{value:.6g}"))
    values.add(float(param.default))
    return sorted(values)


def param_widget(param: Param, key: str, container: Any = st) -> Any:
    """One widget for a declared parameter: selectbox for choices, checkbox for bool, a log-scale select slider or
    a number input for numbers (bounded by the declared range)."""
    label, help_text = param.name.replace("_", " "), param.help
    if param.choices:
        return container.selectbox(label, param.choices, index=list(param.choices).index(param.default), key=key, help=help_text, persist_state="session")
    if param.type is bool:
        return container.checkbox(label, value=bool(param.default), key=key, help=help_text, persist_state="session")
    if param.type is float and param.log and param.default > 0:
        return container.select_slider(label, options=_log_steps(param), value=float(param.default), key=key,
                                       help=help_text, format_func=lambda v: f"{v:g}")
    if param.type is int:
        return container.number_input(label, value=int(param.default), step=1, key=key, help=help_text, persist_state="session",
                                      min_value=int(param.low) if param.low is not None else None,
                                      max_value=int(param.high) if param.high is not None else None)
    if param.type is float:
        return container.number_input(label, value=float(param.default), key=key, help=help_text, persist_state="session", format="%g",
                                      min_value=float(param.low) if param.low is not None else None,
                                      max_value=float(param.high) if param.high is not None else None)
    return container.text_input(label, value=str(param.default), key=key, help=help_text, persist_state="session")


def param_widgets(params: Sequence[Param], key_prefix: str, container: Any = st, columns: int = 2) -> dict[str, Any]:
    """Widgets for the declared parameters that apply, laid out in ``columns``; returns {name: value} of those only.

    A parameter with a condition (``Param.when``) gets its widget only while the condition holds for the widgets
    drawn before it (its controlling parameter is declared earlier), so a hidden widget's kept value is never sent:
    the library resolves the parameters not returned to their defaults."""
    if not params:
        return {}
    check_declarations(params)
    slots = container.columns(columns)
    values: dict[str, Any] = {}
    for param in params:
        if param.applies(values):
            values[param.name] = param_widget(param, f"{key_prefix}.{param.name}", slots[len(values) % columns])
    return values


def drop_missing_choices(key: str, options: Sequence[Any]) -> None:
    """Before a multiselect is drawn: remove from its kept value the choices it no longer offers (a deleted run)."""
    if key in st.session_state:
        kept = [value for value in st.session_state[key] if value in options]
        if kept != list(st.session_state[key]):
            st.session_state[key] = kept


@contextmanager
def readable_errors(what: str) -> Iterator[None]:
    """Show an InterpgradError (bad input) as a readable message instead of a traceback; anything else as an error
    with its type, and the page keeps working."""
    try:
        yield
    except InterpgradError as error:
        st.error(f"{what}: {error}")
    except Exception as error:  # a bug or an environment problem: still no traceback for the user
        st.error(f"{what} failed unexpectedly ({type(error).__name__}: {error}). Please report it.")
