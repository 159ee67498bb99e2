"""The Train page's widget state: widgets whose default follows another choice (the dataset)."""

from __future__ import annotations

from typing import Any, Hashable

import streamlit as st


__all__ = ["follow_default"]

def follow_default(key: str, context: Hashable, default: Any) -> None:
    """Call before drawing the widget ``key`` (drawn without a value of its own): when ``context`` (the dataset)
    changes, the widget takes the value it had the last time that context was chosen, or ``default`` the first time,
    so a default follows the context unless the user changed it there."""
    remembered: dict[Hashable, Any] = st.session_state.setdefault(f"{key}.by_context", {})
    previous = st.session_state.get(f"{key}.context")
    if previous is not None and key in st.session_state:
        remembered[previous] = st.session_state[key]
    if previous != context or key not in st.session_state:
        st.session_state[key] = remembered.get(context, default)
    st.session_state[f"{key}.context"] = context
