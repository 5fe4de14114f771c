"""The generators behind the ``science`` dataset: chemistry, physics and unit-conversion problem templates
(``SCIENCE_TEMPLATES``), with the constants and the molar-mass calculator they compute their answers with."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

# IUPAC standard atomic weights (abridged, g/mol); at 1% tolerance any textbook table gives the same verdict
ATOMIC_WEIGHTS: dict[str, float] = {
    "H": 1.008, "He": 4.0026, "C": 12.011, "N": 14.007, "O": 15.999, "Na": 22.990, "Mg": 24.305, "Al": 26.982,
    "P": 30.974, "S": 32.06, "Cl": 35.45, "K": 39.098, "Ca": 40.078, "Mn": 54.938, "Fe": 55.845, "Cu": 63.546,
    "Zn": 65.38, "Ag": 107.87,
}
R_GAS = 8.314  # J/(mol·K)
G = 9.81  # m/s²

_TOKEN = re.compile(r"([A-Z][a-z]?|\(|\))(\d*)")


def molar_mass(formula: str) -> float:
    """Molar mass in g/mol of a formula such as ``"CaCO3"`` or ``"Ca(OH)2"`` (elements of ``ATOMIC_WEIGHTS``)."""
    stack: list[float] = [0.0]
    pos = 0
    for m in _TOKEN.finditer(formula):
        if m.start() != pos:
            raise ValueError(f"cannot read formula {formula!r} at {formula[pos:]!r}")
        pos = m.end()
        sym, count = m.group(1), int(m.group(2) or 1)
        if sym == "(":
            if m.group(2):
                raise ValueError(f"cannot read formula {formula!r}: a count after '('")
            stack.append(0.0)
        elif sym == ")":
            if len(stack) < 2:
                raise ValueError(f"unbalanced parentheses in {formula!r}")
            inner = stack.pop()
            stack[-1] += inner * count
        else:
            stack[-1] += ATOMIC_WEIGHTS[sym] * count
    if pos != len(formula) or len(stack) != 1:
        raise ValueError(f"cannot read formula {formula!r}")
    return stack[0]


COMPOUNDS = [("water", "H2O"), ("carbon dioxide", "CO2"), ("sodium chloride", "NaCl"),
             ("calcium carbonate", "CaCO3"), ("glucose", "C6H12O6"), ("sulfuric acid", "H2SO4"), ("ammonia", "NH3"),
             ("ethanol", "C2H5OH"), ("sodium hydroxide", "NaOH"), ("potassium permanganate", "KMnO4"),
             ("magnesium sulfate", "MgSO4"), ("iron(III) oxide", "Fe2O3"), ("methane", "CH4"),
             ("aluminium oxide", "Al2O3"), ("copper(II) sulfate", "CuSO4"), ("phosphoric acid", "H3PO4"),
             ("sodium bicarbonate", "NaHCO3"), ("calcium hydroxide", "Ca(OH)2"), ("silver nitrate", "AgNO3"),
             ("zinc chloride", "ZnCl2")]
SOLUTES = [("sodium chloride", "NaCl"), ("sodium hydroxide", "NaOH"), ("potassium chloride", "KCl"),
           ("glucose", "C6H12O6"), ("copper(II) sulfate", "CuSO4"), ("potassium nitrate", "KNO3"),
           ("magnesium chloride", "MgCl2")]
GASES = [("oxygen", "O2"), ("nitrogen", "N2"), ("carbon dioxide", "CO2"), ("methane", "CH4"), ("helium", "He"),
         ("hydrogen", "H2"), ("ammonia", "NH3")]


@dataclass(frozen=True)
class ScienceProblem:
    question: str
    answer: float
    unit: str
    topic: str
    atol: float = 0.0


def _r(r: random.Random, lo: float, hi: float, digits: int) -> float:
    return round(r.uniform(lo, hi), digits)


def _molar_mass_task(r: random.Random) -> ScienceProblem:
    name, f = r.choice(COMPOUNDS)
    return ScienceProblem(f"What is the molar mass of {name} ({f})?", molar_mass(f), "g/mol", "chemistry")


def _moles_task(r: random.Random) -> ScienceProblem:
    name, f = r.choice(COMPOUNDS)
    m = _r(r, 1, 250, 1)
    return ScienceProblem(f"How many moles of {name} ({f}) are in {m} g?", m / molar_mass(f), "mol", "chemistry")


def _molarity_task(r: random.Random) -> ScienceProblem:
    name, f = r.choice(SOLUTES)
    m, v = _r(r, 0.5, 60, 2), r.choice([50, 100, 250, 500, 750, 1000, 2000])
    return ScienceProblem(f"{m} g of {name} ({f}) is dissolved in water to make {v} mL of solution. What is the "
                          f"molar concentration of the solution?", m / molar_mass(f) / (v / 1000), "mol/L",
                          "chemistry")


def _dilution_task(r: random.Random) -> ScienceProblem:
    c1, v1 = _r(r, 0.5, 12, 2), r.choice([5, 10, 20, 25, 50, 100])
    v2 = v1 * r.choice([2, 4, 5, 8, 10, 20, 25])
    return ScienceProblem(f"{v1} mL of a {c1} mol/L stock solution is diluted with water to a final volume of "
                          f"{v2} mL. What is the concentration of the diluted solution?", c1 * v1 / v2, "mol/L",
                          "chemistry")


def _gas_pressure_task(r: random.Random) -> ScienceProblem:
    n, t, v = _r(r, 0.1, 5, 2), r.randint(250, 600), _r(r, 1, 50, 1)
    return ScienceProblem(f"{n} mol of an ideal gas at {t} K is held in a {v} L container. What is its pressure? "
                          f"Use R = {R_GAS} J/(mol·K).", n * R_GAS * t / v, "kPa", "chemistry")


def _gas_volume_task(r: random.Random) -> ScienceProblem:
    name, f = r.choice(GASES)
    m, t_c, p = _r(r, 1, 100, 1), r.randint(-20, 150), r.choice([80, 90, 100, 101.325, 120, 150, 200])
    n = m / molar_mass(f)
    return ScienceProblem(f"What volume does {m} g of {name} gas ({f}) occupy at {t_c} °C and {p} kPa, treating it "
                          f"as an ideal gas? Use R = {R_GAS} J/(mol·K).", n * R_GAS * (t_c + 273.15) / p, "L",
                          "chemistry")


def _distance_task(r: random.Random) -> ScienceProblem:
    u, a, t = _r(r, 0, 30, 1), _r(r, 0.5, 6, 2), _r(r, 2, 30, 1)
    return ScienceProblem(f"A car moving at {u} m/s accelerates uniformly at {a} m/s² for {t} s. How far does it "
                          f"travel during that time?", u * t + 0.5 * a * t * t, "m", "physics")


def _fall_time_task(r: random.Random) -> ScienceProblem:
    h = _r(r, 2, 400, 1)
    return ScienceProblem(f"A stone is dropped from rest from a height of {h} m. Ignoring air resistance and taking "
                          f"g = {G} m/s², how long does it take to reach the ground?", math.sqrt(2 * h / G), "s",
                          "physics")


def _braking_task(r: random.Random) -> ScienceProblem:
    v, a = r.randint(20, 140), _r(r, 2, 9, 1)
    return ScienceProblem(f"A vehicle travelling at {v} km/h brakes with a constant deceleration of {a} m/s². What "
                          f"is its stopping distance?", (v / 3.6) ** 2 / (2 * a), "m", "physics")


def _kinetic_energy_task(r: random.Random) -> ScienceProblem:
    m, v = _r(r, 0.05, 2000, 2), _r(r, 0.5, 80, 1)
    return ScienceProblem(f"What is the kinetic energy of a {m} kg object moving at {v} m/s?", 0.5 * m * v * v, "J",
                          "physics")


def _impact_speed_task(r: random.Random) -> ScienceProblem:
    h = _r(r, 1, 200, 1)
    return ScienceProblem(f"An object falls from rest through a height of {h} m. Ignoring air resistance and taking "
                          f"g = {G} m/s², what is its speed just before it lands?", math.sqrt(2 * G * h), "m/s",
                          "physics")


def _potential_energy_task(r: random.Random) -> ScienceProblem:
    m, h = _r(r, 0.1, 500, 1), _r(r, 0.5, 300, 1)
    return ScienceProblem(f"How much gravitational potential energy does a {m} kg mass gain when it is lifted "
                          f"{h} m? Take g = {G} m/s².", m * G * h, "J", "physics")


def _ohm_task(r: random.Random) -> ScienceProblem:
    r1, r2, v = r.randint(10, 2000), r.randint(10, 2000), _r(r, 1.5, 240, 1)
    if r.random() < 0.5:
        return ScienceProblem(f"Resistors of {r1} Ω and {r2} Ω are connected in series across a {v} V source. What "
                              f"current flows through them?", v / (r1 + r2), "A", "physics")
    return ScienceProblem(f"Resistors of {r1} Ω and {r2} Ω are connected in parallel across a {v} V source. What "
                          f"total current does the source deliver?", v * (1 / r1 + 1 / r2), "A", "physics")


def _power_task(r: random.Random) -> ScienceProblem:
    v, res = r.choice([5, 9, 12, 24, 110, 120, 230, 240]), _r(r, 2, 500, 1)
    return ScienceProblem(f"A {res} Ω heating element is connected to a {v} V supply. What power does it "
                          f"dissipate?", v * v / res, "W", "physics")


def _speed_conversion_task(r: random.Random) -> ScienceProblem:
    if r.random() < 0.5:
        v = _r(r, 1, 300, 1)
        return ScienceProblem(f"Convert {v} km/h to metres per second.", v / 3.6, "m/s", "units")
    v = _r(r, 1, 100, 1)
    return ScienceProblem(f"Convert {v} m/s to kilometres per hour.", v * 3.6, "km/h", "units")


def _temperature_task(r: random.Random) -> ScienceProblem:
    if r.random() < 0.5:
        f = _r(r, -40, 450, 1)
        return ScienceProblem(f"Convert {f} °F to degrees Celsius.", (f - 32) * 5 / 9, "°C", "units", atol=0.1)
    c = _r(r, -40, 300, 1)
    return ScienceProblem(f"Convert {c} °C to kelvin.", c + 273.15, "K", "units", atol=0.1)


def _pressure_task(r: random.Random) -> ScienceProblem:
    p = _r(r, 0.1, 20, 2)
    if r.random() < 0.5:
        return ScienceProblem(f"Convert a pressure of {p} atm to kilopascals.", p * 101.325, "kPa", "units")
    return ScienceProblem(f"Convert a pressure of {p} atm to millimetres of mercury (mmHg).", p * 760, "mmHg",
                          "units")


def _energy_conversion_task(r: random.Random) -> ScienceProblem:
    k = r.random()
    if k < 1 / 3:
        e = _r(r, 1, 3000, 1)
        return ScienceProblem(f"Convert {e} kcal to kilojoules (1 cal = 4.184 J).", e * 4.184, "kJ", "units")
    if k < 2 / 3:
        e = _r(r, 0.1, 5000, 1)
        return ScienceProblem(f"Convert {e} eV to joules.", e * 1.602176634e-19, "J", "units")
    e = _r(r, 0.1, 500, 1)
    return ScienceProblem(f"Convert {e} kWh to megajoules.", e * 3.6, "MJ", "units")


def _length_conversion_task(r: random.Random) -> ScienceProblem:
    if r.random() < 0.5:
        d = _r(r, 0.5, 2000, 1)
        return ScienceProblem(f"Convert {d} miles to kilometres (1 mile = 1.609344 km).", d * 1.609344, "km", "units")
    d = _r(r, 1, 500, 1)
    return ScienceProblem(f"Convert {d} inches to centimetres.", d * 2.54, "cm", "units")


SCIENCE_TEMPLATES: dict[str, Callable[[random.Random], ScienceProblem]] = {
    "molar_mass": _molar_mass_task,
    "moles": _moles_task,
    "molarity": _molarity_task,
    "dilution": _dilution_task,
    "gas_pressure": _gas_pressure_task,
    "gas_volume": _gas_volume_task,
    "distance": _distance_task,
    "fall_time": _fall_time_task,
    "braking": _braking_task,
    "kinetic_energy": _kinetic_energy_task,
    "impact_speed": _impact_speed_task,
    "potential_energy": _potential_energy_task,
    "ohm": _ohm_task,
    "power": _power_task,
    "speed_conversion": _speed_conversion_task,
    "temperature": _temperature_task,
    "pressure": _pressure_task,
    "energy_conversion": _energy_conversion_task,
    "length_conversion": _length_conversion_task,
}
