"""Hypothesis strategies for λ-terms (shared by the core's property tests)."""

from hypothesis import strategies as st

from lambdascope.terms import App, Lam, Var

names = st.sampled_from(["x", "y", "z", "f", "x1", "y2", "a"])

terms = st.recursive(
    names.map(Var),
    lambda children: st.one_of(
        st.builds(Lam, names, children),
        st.builds(App, children, children),
    ),
    max_leaves=12,
)
