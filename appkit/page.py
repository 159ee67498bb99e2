"""What every page does first: run inside the app's navigation, then set its title."""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

__all__ = ["page_setup"]

_SWITCHED = "page_setup.navigation"  # session state: this session has left the directory mode


def page_setup(title: str) -> None:
    """Start a page of ``pages/``: its browser title ``interpgrad · <title>`` and the wide layout.

    A page opened by its URL (a bookmark, a reload) as the first request a fresh server gets would otherwise run on its
    own: Streamlit sees the ``pages/`` folder and, until some session has called ``st.navigation``, runs the page in
    its directory mode — a sidebar of file names ("app", "Models", ...), without the app's navigation. Here the page
    turns that mode off and reruns, so that ``app.py`` runs first and its ``st.navigation`` opens this page (the URL
    names it). ``PagesManager.uses_pages_directory`` is the flag ``st.navigation`` itself clears (Streamlit 1.67).
    Once per session at most: AppTest sets the flag again before every run of a page, and a rerun there would drop
    the click that started the run.
    """
    if PagesManager.uses_pages_directory and not st.session_state.get(_SWITCHED):
        st.session_state[_SWITCHED] = True
        PagesManager.uses_pages_directory = False
        st.rerun()
    st.set_page_config(page_title=f"interpgrad · {title}", layout="wide")
