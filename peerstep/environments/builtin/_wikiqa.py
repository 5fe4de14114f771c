"""The ``wiki-qa`` dataset: factual questions answered with the offline Wikipedia search tools."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from peerstep.environments._dataset import register_dataset
from peerstep.environments._tasklist import StaticTask, TaskListDataset, _check_limit
from peerstep.grading import ShortAnswerChecker
from peerstep.tools import Tool, calculator_tool

if TYPE_CHECKING:
    from peerstep.tools.search import SearchIndex

# (question, gold answer, source article title): each gold appears verbatim in its article's summary text
WIKI_QUESTIONS: list[tuple[str, str, str]] = [
    ("Which engineer is the Eiffel Tower named after?", "Gustave Eiffel", "Eiffel Tower"),
    ("What height, in metres, did the 2020 joint Nepalese-Chinese survey measure for Mount Everest?", "8,848.86",
     "Mount Everest"),
    ("In which year did Albert Einstein receive the Nobel Prize in Physics?", "1921", "Albert Einstein"),
    ("How long is the Nile, in kilometres?", "7,088", "Nile"),
    ("What is Jupiter's orbital period around the Sun, in years?", "11.86", "Jupiter"),
    ("In which year did Marie Curie win the Nobel Prize in Chemistry?", "1911", "Marie Curie"),
    ("Who was the Command Module Pilot of Apollo 11?", "Michael Collins", "Apollo 11"),
    ("On what date did the government of the GDR begin building the Berlin Wall?", "13 August 1961", "Berlin Wall"),
    ("Which artist painted the Mona Lisa?", "Leonardo da Vinci", "Mona Lisa"),
    ("What is the land area of the Commonwealth of Australia, in square kilometres?", "7,688,287", "Australia"),
    ("On what date was the Statue of Liberty dedicated?", "October 28, 1886", "Statue of Liberty"),
    ("In which year was the Taj Mahal commissioned by Shah Jahan?", "1631", "Taj Mahal"),
    ("In which city was Galileo Galilei born?", "Pisa", "Galileo Galilei"),
    ("Abraham Lincoln was which number president of the United States?", "16th", "Abraham Lincoln"),
    ("In which year did Nelson Mandela become President of South Africa?", "1994", "Nelson Mandela"),
    ("What is the capital and largest city of Iceland?", "Reykjavík", "Iceland"),
    ("How many squares does a chess board have?", "64", "Chess"),
    ("How many sonnets are among William Shakespeare's extant works?", "154", "William Shakespeare"),
    ("In which year was Isaac Newton's Philosophiæ Naturalis Principia Mathematica first published?", "1687",
     "Isaac Newton"),
    ("What is the atomic number of gold?", "79", "Gold"),
    ("What is the atomic number of iron?", "26", "Iron"),
    ("What is the chemical symbol of silver?", "Ag", "Silver"),
    ("Which Egyptian pharaoh was the Great Pyramid of Giza built as a tomb for?", "Khufu", "Great Pyramid of Giza"),
    ("How high above sea level is Mount Kilimanjaro, in metres?", "5,895", "Mount Kilimanjaro"),
    ("In which country is Mount Kilimanjaro?", "Tanzania", "Mount Kilimanjaro"),
    ("On what date was Sputnik 1 launched?", "4 October 1957", "Sputnik 1"),
    ("How many minutes did Yuri Gagarin's Vostok 1 flight take?", "108", "Yuri Gagarin"),
    ("On what date did the Wright brothers make their first controlled, sustained powered flight?",
     "December 17, 1903", "Wright brothers"),
    ("In which year was the Hubble Space Telescope launched?", "1990", "Hubble Space Telescope"),
    ("How many patents did Thomas Edison register in the United States?", "1,093", "Thomas Edison"),
    ("How long is the Panama Canal, in kilometres?", "82", "Panama Canal"),
    ("What is the maximum known depth of the Mariana Trench, in metres?", "10,935", "Mariana Trench"),
    ("What is the capital of Greenland?", "Nuuk", "Greenland"),
    ("How many states make up the federation of Brazil, not counting the Federal District?", "26", "Brazil"),
    ("What is Saturn's orbital period around the Sun, in years?", "29.45", "Saturn"),
    ("How many years does Neptune take to orbit the Sun once?", "164.8", "Neptune"),
    ("In which year did Alexander Fleming discover what was later named benzylpenicillin?", "1928",
     "Alexander Fleming"),
    ("Under which emperor did construction of the Colosseum begin?", "Vespasian", "Colosseum"),
    ("What is the population of Monaco?", "38,423", "Monaco"),
    ("Which dynasty built the best-known sections of the Great Wall of China?", "Ming", "Great Wall of China"),
]


@register_dataset("wiki-qa")
class WikiQADataset(TaskListDataset):
    """Factual questions answered with the offline Wikipedia search tools.

    ``index`` replaces the default Wikipedia index (built on first use); it is opened lazily, on the first
    ``make``, so listing tasks or grading answers never touches it.
    """

    name = "wiki-qa"

    def __init__(self, seed: int = 0, limit: int | None = None, python: bool = True,
                 index: SearchIndex | None = None) -> None:
        _check_limit(limit)
        self._index = index
        order = list(range(len(WIKI_QUESTIONS)))
        random.Random(f"peerstep-wiki-qa-{seed}").shuffle(order)
        if limit is not None:
            order = order[:limit]
        checker = ShortAnswerChecker()
        tasks = []
        for k in order:
            question, gold, title = WIKI_QUESTIONS[k]
            tasks.append(StaticTask(
                task_id=f"wiki-qa-{k:03d}",
                question=f"{question} Search the encyclopedia and answer briefly (a name, a date or a number).",
                gold=gold, checker=checker, tools=self._tools, python=python,
                tags={"source_title": title, "question_index": k},
            ))
        super().__init__(tasks)
        self.seed = seed

    @property
    def index(self) -> SearchIndex:
        if self._index is None:
            from peerstep.tools.search import wikipedia_index

            self._index = wikipedia_index()
        return self._index

    def _tools(self) -> list[Tool]:
        from peerstep.tools.search import search_tools

        return [*search_tools(self.index), calculator_tool()]
