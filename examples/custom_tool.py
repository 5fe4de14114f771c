"""Add your own tool: any typed function with a docstring becomes one.

    python examples/custom_tool.py

The schema the model sees is generated from the signature and the ``Args:`` section; the model's
arguments are validated against it, and a wrong call comes back to the model as an observation.
"""

from __future__ import annotations

from peerstep import solve
from peerstep.tools import calculator_tool, tool

MOLAR_MASS = {"H": 1.008, "C": 12.011, "N": 14.007, "O": 15.999, "Na": 22.990, "Cl": 35.45, "S": 32.06}


@tool
def molar_mass(element: str) -> str:
    """Look up the molar mass of a chemical element in g/mol.

    Args:
        element: The element symbol, e.g. "Na" or "O".
    """
    if element not in MOLAR_MASS:
        return f"unknown element {element!r}; known: {', '.join(MOLAR_MASS)}"
    return f"{MOLAR_MASS[element]} g/mol"


def main() -> None:
    print(molar_mass.schema())
    result = solve("What is the molar mass of NaCl in g/mol? Look up each element.",
                   tools=[molar_mass, calculator_tool()])
    print("answer:", result.answer)


if __name__ == "__main__":
    main()
