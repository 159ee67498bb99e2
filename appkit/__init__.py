"""Streamlit helpers shared by the app's pages (the library itself never imports Streamlit)."""
