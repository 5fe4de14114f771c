"""Aviary compatibility on real fhaviary objects: conversions, episodes in process and over loopback HTTP.

The model is scripted (tests/scripted.py); the environments, Aviary's TaskDatasetServer/Client and the
HTTP between them are real. No test reaches beyond 127.0.0.1: HotPotQA's Wikipedia search is pointed
at a loopback port that refuses connections, through the environment's own ``proxy`` setting.
"""

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aviary.core import Environment as AviaryEnv
from aviary.core import (
    FunctionInfo,
    Message,
    TaskDataset,
    TaskDatasetClient,
    Tool,
    ToolCall,
    ToolRequestMessage,
    ToolResponseMessage,
    ToolsAdapter,
)
from aviary.envs.gsm8k import CalculatorEnv
from aviary.envs.hotpotqa import HotPotQAEnv

from peerstep import arun
from peerstep._errors import PeerstepError
from peerstep.agent import AgentConfig, Budget
from peerstep.environments import (
    EnvironmentDataset,
    QuestionEnvironment,
    TaskInfo,
    ToolEnvironment,
    load_dataset,
    observation,
    submit_answer,
)
from peerstep.environments import aviary as adapter
from peerstep.environments._base import NO_TOOL_CALLS
from peerstep.environments.aviary import (
    CALCULATOR_ROWS,
    AviaryDataset,
    AviaryEnvironment,
    AviaryNotInstalledError,
    AviaryServer,
    AviaryTool,
    aviary_calculator,
    calculator_task_dataset,
    peerstep_task_dataset,
    to_aviary_message,
    to_aviary_tool,
    to_openai_message,
)
from peerstep.steplog import StepKind, StepLog, StepRecord
from peerstep.tools import Tool as PeerstepTool
from peerstep.tools import calculator_tool
from tests.scripted import PerTrajectoryClient, ScriptedClient, native_call

INSTRUCTIONS = ("Answer the question below. Use the tools offered (calculate) as you need them; when you have the "
                "final answer, call submit_answer with its answer argument set to the final answer only.")
TOOL_INFO_KEYS = {"ok", "latency_s", "timed_out", "truncated"}


def text_call(name: str, **arguments: Any) -> str:
    return json.dumps({"name": name, "arguments": arguments})


def records(log: StepLog) -> list[StepRecord]:
    with StepLog(log.path, log.run_id) as reader:
        return list(reader.records())


# --- a small real Aviary environment whose tool raises -------------------------------------------


class LedgerEnv(AviaryEnv[None]):
    """Balances by account name. ``lookup`` of an unknown account raises KeyError, which this environment,
    like HotPotQA, does not catch (``exec_tool_calls`` without ``handle_tool_exc``)."""

    def __init__(self, fail_reset: bool = False) -> None:
        self.ledger = {"alice": 3, "bob": 7}
        self.answer = 7
        self.fail_reset = fail_reset
        self.reward = 0.0
        self.done = False

    async def reset(self) -> tuple[list[Message], list[Tool]]:
        if self.fail_reset:
            raise ConnectionError("ledger service unreachable")
        self.state = None
        self.done = False
        self.tools = [Tool.from_function(self.lookup), Tool.from_function(self.complete)]
        return [Message(content="What is Bob's balance?")], self.tools

    def lookup(self, account: str) -> str:
        """Look up an account's balance.

        Args:
            account: The account holder's name, lower case.
        """
        return str(self.ledger[account])

    def complete(self, answer: str) -> str:
        """Finish the episode with the balance.

        Args:
            answer: The balance, a number.
        """
        self.done = True
        self.reward = 1.0 if answer.strip() == str(self.answer) else 0.0
        return "Done."

    async def step(self, action: Message) -> tuple[list[Any], float, bool, bool]:
        if not isinstance(action, ToolRequestMessage):
            return self.default_no_tool_calls_response
        self.reward = 0.0
        responses = await self.exec_tool_calls(action)
        return list(responses), self.reward, self.done, False


class LedgerTasks(TaskDataset[LedgerEnv]):
    def __len__(self) -> int:
        return 1

    def get_new_env_by_idx(self, idx: int) -> LedgerEnv:
        return LedgerEnv()


class ArithmeticQuestions(EnvironmentDataset):
    """peerstep QuestionEnvironments (calculator + submit_answer), to be served to Aviary clients."""

    name = "arithmetic"
    ROWS = (("q0", "What is 6 * 7?", "42"), ("q1", "What is 2 to the 10th power?", "1024"))

    def __len__(self) -> int:
        return len(self.ROWS)

    def info(self, index: int) -> TaskInfo:
        task_id, question, gold = self.ROWS[index]
        return TaskInfo(task_id=task_id, question=question, gold=gold)

    def make(self, index: int) -> QuestionEnvironment:
        _, question, gold = self.ROWS[index]
        return QuestionEnvironment(question, gold=gold)


@pytest.fixture()
def refusing_proxy() -> Iterator[str]:
    """A loopback port that is bound but never listens: every connection to it is refused at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def running_envs(url: str) -> list[str]:
    return list(httpx.get(f"{url}/info").json()["running_env_ids"])


def assert_stopped(server: AviaryServer) -> None:
    assert not server.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/info", timeout=5)


# --- conversions -----------------------------------------------------------------------------------


OPENAI_MESSAGES: list[dict[str, Any]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 2+3?"},
    {"role": "user", "content": [{"type": "text", "text": "and this?"}]},
    {"role": "assistant", "content": "Let me compute.", "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "calculator", "arguments": '{"expr": "2+3"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "lookup", "arguments": json.dumps(
            {"account": "bob", "nested": {"k": [1, 2.5, None, True]}})}},
    ]},
    {"role": "assistant", "content": None, "tool_calls": []},
    {"role": "assistant", "content": "No tools needed."},
    {"role": "tool", "tool_call_id": "call_a", "name": "calculator", "content": "5",
     "info": {"ok": True, "latency_s": 0.25, "timed_out": False, "truncated": False}},
    {"role": "tool", "tool_call_id": "call_b", "name": "lookup", "content": ""},
]


def test_openai_messages_round_trip_through_aviary() -> None:
    converted = [to_aviary_message(m) for m in OPENAI_MESSAGES]
    assert [type(m).__name__ for m in converted] == ["Message", "Message", "Message", "ToolRequestMessage",
                                                     "ToolRequestMessage", "Message", "ToolResponseMessage",
                                                     "ToolResponseMessage"]
    request = converted[3]
    assert isinstance(request, ToolRequestMessage)
    assert request.tool_calls[1].function.arguments["nested"] == {"k": [1, 2.5, None, True]}
    response = converted[6]
    assert isinstance(response, ToolResponseMessage) and response.info == OPENAI_MESSAGES[6]["info"]
    assert [to_openai_message(m) for m in converted] == OPENAI_MESSAGES


def test_aviary_messages_round_trip_through_openai() -> None:
    call = ToolCall.from_name("calculator", expr="6*7")
    originals: list[Message] = [
        Message(role="system", content="sys"),
        Message(content="question", info={"source": "row 3"}),
        Message(content=[{"type": "text", "text": "multimodal text block"}]),  # type: ignore[arg-type]
        ToolRequestMessage(content="thinking", tool_calls=[call, ToolCall.from_name("submit_answer", answer="42")]),
        ToolRequestMessage(tool_calls=[]),
        ToolResponseMessage.from_call(call, content="42", info={"start_ts": 1.0, "end_ts": 1.5}),
    ]
    back = [to_aviary_message(to_openai_message(m)) for m in originals]
    for original, copy in zip(originals, back, strict=True):
        assert type(copy) is type(original)
        assert copy.model_dump(context={"include_info": True}) == original.model_dump(context={"include_info": True})
    assert to_openai_message(originals[2])["content"] == [{"type": "text", "text": "multimodal text block"}]


def test_unparseable_arguments_follow_aviary_rule() -> None:
    msg = to_aviary_message({"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "calculator", "arguments": '{"expr": "1+'}}]})
    assert isinstance(msg, ToolRequestMessage)
    assert msg.tool_calls[0].function.name == "INVALID" and msg.tool_calls[0].id == "c1"


async def test_tool_schemas_round_trip_both_ways() -> None:
    env = CalculatorEnv(problem_id="p", problem="1+1?", answer=2)
    _, aviary_tools = await env.reset()
    no_params = Tool(info=FunctionInfo(name="ping", description="Check the service.", parameters=None))
    for aviary_tool in [*aviary_tools, no_params]:
        wrapped = AviaryTool(aviary_tool)
        dumped = aviary_tool.model_dump(exclude_none=True, by_alias=True)
        assert wrapped.name == aviary_tool.info.name and wrapped.description == aviary_tool.info.description
        assert wrapped.schema() == dumped
        schema = wrapped.schema()
        schema["function"].setdefault("parameters", None)  # Aviary requires the key, OpenAI omits it when empty
        (revalidated,) = ToolsAdapter.validate_python([schema])
        assert revalidated.model_dump(exclude_none=True, by_alias=True) == dumped
        assert to_aviary_tool(wrapped) is aviary_tool
    calc = AviaryTool(aviary_tools[0])
    assert calc.parameters["properties"]["expr"]["description"] == "A valid Python expression."
    assert calc.signature_text() == "calculator(expr: string)"
    assert (await calc({"expr": "1+1"})).ok is False  # Aviary runs its tools in its own step

    for tool in (calculator_tool(), PeerstepTool(submit_answer)):
        as_aviary = to_aviary_tool(tool)
        expected = tool.schema()
        expected["function"]["parameters"].setdefault("required", [])
        assert as_aviary.model_dump(exclude_none=True, by_alias=True) == expected
        assert AviaryTool(as_aviary).schema() == expected
    # the converted tool runs the peerstep tool when Aviary executes it itself
    assert await to_aviary_tool(calculator_tool())._tool_fn(expression="6*7") == "42"


# --- Aviary environments driven by peerstep, in process --------------------------------------------


async def test_calculator_episode_in_process(tmp_path: Path) -> None:
    dataset = aviary_calculator()
    assert len(dataset) == len(CALCULATOR_ROWS)
    info = dataset.info(1)
    assert (info.task_id, info.question, info.gold) == ("calc-1", "What is 1234 * 56 - 789?", "68315")
    env = dataset.make(1)
    client = ScriptedClient([text_call("calculator", expr="1234 * 56 - 789"),
                             [native_call("submit_answer", answer="68315")]])
    log = StepLog.create(directory=tmp_path)
    result = await arun(env, client, log=log, agent=AgentConfig(native_tools=True))
    assert (result.answer, result.reward, result.steps, result.gold, result.error) == ("68315", 1.0, 2, "68315",
                                                                                       None)
    assert env.finish_tool == "submit_answer"
    # the agent saw Aviary's own tool descriptions (as native schemas, asked for here; off by default)
    sent_tools = client.requests_seen[0]["tools"]
    assert [t["function"]["name"] for t in sent_tools] == ["calculator", "submit_answer"]
    assert "Calculate a mathematical expression." in client.requests_seen[0]["messages"][0]["content"]
    recs = records(log)
    assert [r.kind.value for r in recs] == ["run_start", "reason", "tool_call", "observation", "reason",
                                            "tool_call", "observation", "final", "barrier", "aggregate", "run_end"]
    calc_obs = recs[3]
    assert calc_obs.text == "68315" and calc_obs.tool is not None and calc_obs.tool.name == "calculator"
    final = recs[7]
    assert final.reward == 1.0 and final.done is True and final.data["gold"] == "68315"


async def test_wrong_answer_gets_aviary_reward(tmp_path: Path) -> None:
    client = ScriptedClient([text_call("submit_answer", answer="400")])
    result = await arun(aviary_calculator().make(0), client, log=StepLog.create(directory=tmp_path))
    assert result.answer == "400" and result.reward == 0.0


async def test_reply_without_a_tool_call_gets_a_hint(tmp_path: Path) -> None:
    client = ScriptedClient(["Let me think: 24 crates of 17.", text_call("submit_answer", answer="408")])
    result = await arun(aviary_calculator().make(0), client, log=StepLog.create(directory=tmp_path))
    assert result.reward == 1.0 and result.steps == 2
    hint = client.requests_seen[1]["messages"][-1]
    assert hint["role"] == "user" and "Your reply had no tool call" in hint["content"]
    assert "Tools: calculator." in hint["content"] and "call submit_answer with it" in hint["content"]


async def test_reply_without_a_tool_call_under_aviary_policy(tmp_path: Path) -> None:
    """``no_tool_calls="aviary"`` sends what an LDP agent would: the calculator's failure reward ends it."""
    env = AviaryEnvironment(CalculatorEnv(problem_id="p", problem="What is 24 * 17?", answer=408),
                            no_tool_calls="aviary")
    client = ScriptedClient(["Let me think."])
    log = StepLog.create(directory=tmp_path)
    result = await arun(env, client, log=log)
    assert result.reward == -1.0 and result.answer is None and result.steps == 1
    obs = next(r for r in records(log) if r.kind == StepKind.OBSERVATION)
    assert obs.text == "Must call one of the provided tools (calculator or submit_answer)."


async def test_forced_answer_names_the_aviary_answer_tool(tmp_path: Path) -> None:
    """LedgerEnv ends with ``complete``, not ``submit_answer``: the forced call must name it."""
    env = AviaryEnvironment(LedgerEnv())
    client = ScriptedClient([text_call("lookup", account="bob"), [native_call("complete", answer="7")]])
    config = AgentConfig(budget=Budget(max_steps=1))
    result = await arun(env, client, agent=config, log=StepLog.create(directory=tmp_path))
    assert env.finish_tool == "complete"
    assert client.requests_seen[1]["tool_choice"] == {"type": "function", "function": {"name": "complete"}}
    assert result.answer == "7" and result.reward == 1.0 and result.gold == "7"
    # every sentence that names the finishing tool names this one
    opening = client.requests_seen[0]["messages"][0]["content"]
    assert "call complete with the answer only" in opening and "submit_answer" not in opening
    forced = client.requests_seen[1]["messages"][-1]["content"]
    assert "by calling complete with your best answer" in forced and "submit_answer" not in forced


async def test_hints_name_only_the_tools_on_offer(tmp_path: Path) -> None:
    """A repeated call's note and the no-call hint name the environment's finishing tool and tools."""
    env = AviaryEnvironment(LedgerEnv())
    client = ScriptedClient(["Thinking.", text_call("lookup", account="bob"), text_call("lookup", account="bob"),
                             text_call("complete", answer="7")])
    result = await arun(env, client, log=StepLog.create(directory=tmp_path))
    assert result.answer == "7"
    hint = client.requests_seen[1]["messages"][-1]["content"]
    assert "Tools: lookup." in hint and "call complete with it" in hint
    repeated = client.requests_seen[3]["messages"][-1]["content"]
    assert "If it answers the question, call complete now" in repeated
    sent = "\n".join(str(m.get("content")) for r in client.requests_seen for m in r["messages"])
    assert "submit_answer" not in sent and "calculate" not in sent


async def test_majority_on_calculator_in_process(tmp_path: Path) -> None:
    client = PerTrajectoryClient({
        0: [text_call("calculator", expr="24*17"), text_call("submit_answer", answer="408")],
        1: [text_call("submit_answer", answer="398")],
        2: [text_call("calculator", expr="24 * 17"), text_call("submit_answer", answer="408")],
    })
    dataset = aviary_calculator()
    built: list[AviaryEnvironment] = []

    def factory() -> AviaryEnvironment:
        built.append(dataset.make(0))
        return built[-1]

    log = StepLog.create(directory=tmp_path)
    result = await arun(factory, client, strategy="majority", n=3, log=log)
    assert result.answer == "408" and result.answers == {0: "408", 1: "398", 2: "408"}
    assert len({id(env.inner) for env in built}) == 3  # every trajectory had its own Aviary environment
    finals = {r.trajectory_id: r.reward for r in records(log) if r.kind == StepKind.FINAL}
    assert finals == {0: 1.0, 1: 0.0, 2: 1.0}
    assert dataset.grade(0, result.answer) and not dataset.grade(0, "398")


def test_registered_dataset_loads() -> None:
    dataset = load_dataset("aviary-calculator")
    assert isinstance(dataset, AviaryDataset) and dataset.name == "aviary-calculator"
    assert [dataset.info(i).gold for i in range(len(dataset))] == ["408", "68315", "297.5", "205.5", "204.25",
                                                                   "100"]
    with pytest.raises(IndexError, match="out of range"):
        dataset.make(len(dataset))


# --- failures become observations -----------------------------------------------------------------


async def test_hotpotqa_live_search_failure_is_an_observation(tmp_path: Path, refusing_proxy: str) -> None:
    """HotPotQA builds from a local row; its search goes to Wikipedia, here through a proxy that refuses."""
    hotpot = HotPotQAEnv(question_id=None, question="Milhouse was named after which US president?",
                         correct_answer="Richard Nixon", proxy=refusing_proxy)
    env = AviaryEnvironment(hotpot)
    client = ScriptedClient([[native_call("search", entity="Milhouse Van Houten peerstep test")],
                             [native_call("submit_answer", answer="Richard Nixon")]])
    log = StepLog.create(directory=tmp_path)
    result = await arun(env, client, log=log)
    assert result.error is None and result.answer == "Richard Nixon" and result.reward == 1.0
    observations = [r for r in records(log) if r.kind == StepKind.OBSERVATION]
    failed = observations[0]
    assert failed.tool is not None and failed.tool.name == "search" and failed.tool.ok is False
    assert failed.text is not None and failed.text.startswith("Error: the environment failed: RetryError")
    assert "127.0.0.1" in failed.text  # the refused proxy connection is named
    # the model was told, in the tool turn answering its call
    told = client.requests_seen[1]["messages"][-1]
    assert told["role"] == "tool" and told["tool_call_id"] == "call_search" and "RetryError" in told["content"]


async def test_raising_tool_is_an_observation_and_the_episode_goes_on(tmp_path: Path) -> None:
    env = AviaryEnvironment(LedgerEnv())
    client = ScriptedClient([text_call("lookup", account="robert"), text_call("lookup", account="bob"),
                             text_call("complete", answer="7")])
    log = StepLog.create(directory=tmp_path)
    result = await arun(env, client, log=log)
    assert result.answer == "7" and result.reward == 1.0
    obs = [r for r in records(log) if r.kind == StepKind.OBSERVATION]
    assert obs[0].tool is not None and obs[0].tool.ok is False
    assert obs[0].text is not None and "KeyError: 'robert'" in obs[0].text
    assert obs[1].text == "7"
    assert "KeyError" in client.requests_seen[1]["messages"][-1]["content"]
    errors = [r for r in records(log) if r.kind == StepKind.ERROR]
    assert len(errors) == 1 and errors[0].parent_id == obs[0].step_id and "KeyError" in (errors[0].text or "")


def _action(*calls: tuple[str, str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": call_id, "type": "function",
         "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}}
        for call_id, name, args in calls]}


async def test_an_invented_argument_is_an_observation_naming_the_aviary_tools_arguments() -> None:
    """Aviary's ``calculator(expr)`` called as ``calculator(expression=...)``: before, a TypeError reached the
    model (which submitted it as its answer); now the observation names ``expr`` and nothing reaches Aviary."""
    env = aviary_calculator().make(0)
    await env.reset()
    observations, reward, done, truncated = await env.step(_action(("c1", "calculator", {"expression": "24*17"})))
    assert (reward, done, truncated) == (0.0, False, False)
    (obs,) = observations
    assert obs["role"] == "tool" and obs["tool_call_id"] == "c1" and obs["name"] == "calculator"
    assert obs["info"]["ok"] is False and "error" not in obs["info"]  # the agent's mistake, not a failing env
    assert obs["content"] == ("Error: calculator got an unexpected argument 'expression' and is missing the required "
                              "argument 'expr'. It takes: expr (string, required).")
    assert "TypeError" not in obs["content"] and env.errors == 0
    # a missing argument, a wrong type: the same kind of answer
    for args, problem in [({}, "calculator is missing the required argument 'expr'."),
                          ({"expr": ["24", "17"]}, "calculator got [\"24\", \"17\"] for 'expr', which must be a "
                                                    "string."),
                          ({"answer": "408"}, "calculator got an unexpected argument 'answer' and is missing")]:
        (obs,), _, done, _ = await env.step(_action(("c2", "calculator", args)))
        assert obs["content"].startswith(f"Error: {problem}") and "It takes: expr (string, required)." in obs["content"]
        assert not done
    (obs,), _, done, _ = await env.step(_action(("c3", "submit_answer", {"answer": {"value": 408}})))
    assert obs["content"] == ("Error: submit_answer got {\"value\": 408} for 'answer', which must be a string. "
                              "It takes: answer (string, required).") and not done
    # in one action, the good call still runs and the observations keep the calls' order
    observations, _, done, _ = await env.step(_action(("a", "calculator", {"x": 1}), ("b", "calculator",
                                                                                      {"expr": "24*17"})))
    assert [o["tool_call_id"] for o in observations] == ["a", "b"] and observations[1]["content"] == "408"
    # a bare string goes to the only argument (Aviary itself would rename the call INVALID and give -1)
    observations, reward, _, _ = await env.step(_action(("d", "calculator", "24*17")))
    assert observations[0]["content"] == "408" and reward == 0.0
    # a number for the string answer is its text, as the model meant it
    _, reward, done, _ = await env.step(_action(("e", "submit_answer", {"answer": 408})))
    assert done and reward == 1.0


async def test_an_episode_recovers_from_a_bad_argument(tmp_path: Path) -> None:
    client = ScriptedClient([[native_call("calculator", expression="24 * 17")],
                             [native_call("calculator", expr="24 * 17")],
                             [native_call("submit_answer", answer="408")]])
    log = StepLog.create(directory=tmp_path)
    result = await arun(aviary_calculator().make(0), client, log=log, agent=AgentConfig(native_tools=True))
    assert (result.answer, result.reward, result.steps, result.error) == ("408", 1.0, 3, None)
    told = client.requests_seen[1]["messages"][-1]
    assert told["role"] == "tool" and told["content"] == (
        "Error: calculator got an unexpected argument 'expression' and is missing the required argument 'expr'. "
        "It takes: expr (string, required).")
    assert client.requests_seen[2]["messages"][-1]["content"] == "408"
    obs = [r for r in records(log) if r.kind == StepKind.OBSERVATION]
    assert obs[0].tool is not None and obs[0].tool.ok is False and obs[1].text == "408"
    assert not [r for r in records(log) if r.kind == StepKind.ERROR]


async def test_repeated_failures_end_the_episode_as_truncated(tmp_path: Path) -> None:
    env = AviaryEnvironment(LedgerEnv(), max_errors=2)
    client = ScriptedClient([text_call("lookup", account="x"), text_call("lookup", account="y")])
    log = StepLog.create(directory=tmp_path)
    result = await arun(env, client, log=log)
    assert result.steps == 2 and result.answer is None and result.reward == 0.0
    final = next(r for r in records(log) if r.kind == StepKind.FINAL)
    assert final.data["truncated"] is True and final.reward == 0.0
    assert client.replies == []


async def test_failing_reset_is_reported_not_raised(tmp_path: Path) -> None:
    env = AviaryEnvironment(lambda: LedgerEnv(fail_reset=True))
    client = ScriptedClient(["I cannot do anything."])
    log = StepLog.create(directory=tmp_path)
    result = await arun(env, client, log=log)
    assert result.answer is None and result.error == "no trajectory produced an answer"
    opening = client.requests_seen[0]["messages"][-1]["content"]
    assert "could not start (ConnectionError: ledger service unreachable)" in opening
    recs = records(log)
    assert recs[0].kind == StepKind.RUN_START and recs[0].data["tools"] == []
    assert recs[1].kind == StepKind.ERROR and "ledger service unreachable" in (recs[1].text or "")
    assert recs[1].data["stage"] == "reset"
    final = next(r for r in recs if r.kind == StepKind.FINAL)
    assert final.data["truncated"] is True


class LeakyLedgerEnv(LedgerEnv):
    async def close(self) -> None:
        raise OSError("socket already gone")


async def test_failing_close_does_not_fail_the_episode(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    client = ScriptedClient([text_call("complete", answer="7")])
    result = await arun(AviaryEnvironment(LeakyLedgerEnv()), client, log=StepLog.create(directory=tmp_path))
    assert result.reward == 1.0
    assert "OSError: socket already gone" in caplog.text


# --- over HTTP: Aviary's TaskDatasetServer and TaskDatasetClient on loopback ------------------------


async def test_calculator_over_http(tmp_path: Path) -> None:
    local = aviary_calculator()
    infos = [local.info(i) for i in range(len(local))]
    with AviaryServer(calculator_task_dataset()) as server:
        assert server.host == "127.0.0.1" and server.port > 0
        remote = AviaryDataset.remote(server.url, infos=infos)
        assert len(remote) == len(CALCULATOR_ROWS)
        client = ScriptedClient([[native_call("calculator", expr="(17 + 26) * 19 / 4")],
                                 [native_call("submit_answer", answer="204.25")]])
        log = StepLog.create(directory=tmp_path)
        result = await arun(remote.make(4), client, log=log)
        assert (result.answer, result.reward, result.gold) == ("204.25", 1.0, "204.25")
        assert client.requests_seen[1]["messages"][-1] == {"role": "tool", "tool_call_id": "call_calculator",
                                                           "name": "calculator", "content": "204.25"}

        scripts = {tid: [text_call("calculator", expr="12.5*8"), text_call("submit_answer", answer=answer)]
                   for tid, answer in enumerate(["100", "100", "96"])}
        majority = await arun(remote.factory(5), PerTrajectoryClient(scripts), strategy="majority", n=3,
                                      log=StepLog.create(directory=tmp_path))
        assert majority.answer == "100" and majority.errors == {}
        assert running_envs(server.url) == []  # every remote environment was closed by its episode
    assert_stopped(server)


async def test_remote_environment_failure_is_an_observation(tmp_path: Path) -> None:
    with AviaryServer(LedgerTasks()) as server:
        env = AviaryDataset.remote(server.url).make(0)
        client = ScriptedClient([text_call("lookup", account="carol"), text_call("complete", answer="7")])
        log = StepLog.create(directory=tmp_path)
        result = await arun(env, client, log=log)
        assert result.reward == 1.0
        failed = next(r for r in records(log) if r.kind == StepKind.OBSERVATION)
        assert failed.tool is not None and failed.tool.ok is False and failed.text is not None
        assert "HTTPStatusError" in failed.text and "KeyError('carol')" in failed.text  # the server's own error
    assert_stopped(server)


async def test_unreachable_server_is_reported(tmp_path: Path) -> None:
    with AviaryServer(LedgerTasks()) as server:
        remote = TaskDatasetClient(server.url)
    assert_stopped(server)
    env = AviaryEnvironment(lambda: remote.get_new_env_by_idx(0))
    client = ScriptedClient([text_call("lookup", account="bob")])
    result = await arun(env, client, log=StepLog.create(directory=tmp_path))
    assert result.answer is None
    assert "could not start" in client.requests_seen[0]["messages"][-1]["content"]


# --- peerstep environments served to Aviary clients ------------------------------------------------


async def test_aviary_client_drives_a_served_peerstep_environment() -> None:
    with AviaryServer(peerstep_task_dataset(ArithmeticQuestions())) as server:
        tasks = TaskDatasetClient(server.url)
        assert len(tasks) == 2
        env = tasks.get_new_env_by_idx(0)
        observations, tools = await env.reset()
        assert [m.content for m in observations] == [INSTRUCTIONS + "\n\nWhat is 6 * 7?"]
        expected = calculator_tool().schema()
        expected["function"]["parameters"].setdefault("required", [])
        assert tools[0].model_dump(exclude_none=True, by_alias=True) == expected
        assert [t.info.name for t in tools] == ["calculate", "submit_answer"]

        calc = ToolCall.from_name("calculate", expression="6 * 7")
        responses, reward, done, truncated = await env.step(ToolRequestMessage(tool_calls=[calc]))
        (response,) = responses
        assert isinstance(response, ToolResponseMessage)
        assert (response.content, response.tool_call_id, response.name) == ("42", calc.id, "calculate")
        assert response.info is not None and response.info["ok"] is True  # peerstep's execution facts travel too
        assert (reward, done, truncated) == (0.0, False, False)

        responses, reward, done, _ = await env.step(
            ToolRequestMessage(tool_calls=[ToolCall.from_name("submit_answer", answer="42")]))
        assert (reward, done) == (1.0, True) and "42" in (responses[0].content or "")
        assert len(running_envs(server.url)) == 1
        await env.close()
        assert running_envs(server.url) == []
    assert_stopped(server)


async def test_peerstep_agent_on_peerstep_environment_through_aviary_http(tmp_path: Path) -> None:
    """peerstep agent -> AviaryEnvironment -> HTTP -> PeerstepAviaryEnv -> QuestionEnvironment, and back."""
    questions = ArithmeticQuestions()
    with AviaryServer(peerstep_task_dataset(questions)) as server:
        remote = AviaryDataset.remote(server.url, infos=[questions.info(i) for i in range(len(questions))])
        client = ScriptedClient([text_call("calculate", expression="2**10"), text_call("submit_answer",
                                                                                        answer="1024")])
        log = StepLog.create(directory=tmp_path)
        result = await arun(remote.make(1), client, log=log)
        assert (result.answer, result.reward) == ("1024", 1.0)
        obs = next(r for r in records(log) if r.kind == StepKind.OBSERVATION)
        assert obs.text == "1024" and obs.tool is not None and obs.tool.ok is True  # info survived the trip

        scripts = {tid: [text_call("calculate", expression="6*7"), text_call("submit_answer", answer=answer)]
                   for tid, answer in enumerate(["42", "41", "42"])}
        majority = await arun(remote.factory(0), PerTrajectoryClient(scripts), strategy="majority", n=3,
                                      log=StepLog.create(directory=tmp_path))
        assert majority.answer == "42" and majority.answers == {0: "42", 1: "41", 2: "42"}
        assert running_envs(server.url) == []
    assert_stopped(server)


async def test_served_environment_reports_id_and_frame() -> None:
    env = adapter.PeerstepAviaryEnv(ArithmeticQuestions().factory(1), task_id="q1", gold="1024")
    assert isinstance(env, AviaryEnv)
    await env.reset()
    assert await env.get_id() == "q1"
    await env.step(ToolRequestMessage(tool_calls=[ToolCall.from_name("submit_answer", answer="1024")]))
    frame = env.export_frame()
    assert frame.state == {"reward": 1.0, "done": True, "truncated": False}
    assert frame.info == {"task_id": "q1", "gold": "1024", "environment": "QuestionEnvironment"}
    await env.close()
    with pytest.raises(RuntimeError, match="reset"):
        await env.step(ToolRequestMessage(tool_calls=[]))


def final_answer(value: str) -> str:
    """Give the final answer; the episode ends.

    Args:
        value: The answer only.
    """
    return value


class FinalAnswerQuestion(ToolEnvironment):
    """A peerstep environment whose finishing tool is not submit_answer, to show the instructions are built from
    the tools offered."""

    finish_tool = "final_answer"

    def __init__(self) -> None:
        super().__init__([calculator_tool(), PeerstepTool(final_answer)])

    async def reset(self) -> tuple[list[dict[str, Any]], list[PeerstepTool]]:
        self.done = False
        return [{"role": "user", "content": "What is 6 * 7?"}], list(self.tools.values())

    async def submit(self, call: dict[str, Any]) -> tuple[dict[str, Any], float]:
        return observation(call.get("id") or "call", self.finish_tool, "Recorded."), 1.0


class FinalAnswerTasks(EnvironmentDataset):
    name = "final-answer"

    def __len__(self) -> int:
        return 1

    def info(self, index: int) -> TaskInfo:
        return TaskInfo(task_id="fa-0", question="What is 6 * 7?", gold="42")

    def make(self, index: int) -> FinalAnswerQuestion:
        return FinalAnswerQuestion()


async def test_served_reply_without_tool_calls_gets_aviary_wording() -> None:
    with AviaryServer(peerstep_task_dataset(ArithmeticQuestions())) as server:
        env = TaskDatasetClient(server.url).get_new_env_by_idx(0)
        await env.reset()
        for action in (Message(role="assistant", content="It is 42."), ToolRequestMessage(tool_calls=[])):
            (obs,), reward, done, truncated = await env.step(action)
            assert (obs.role, obs.content) == ("user", NO_TOOL_CALLS)
            aviarys_own = LedgerEnv().default_no_tool_calls_response[0][0].content
            assert (obs.content, reward, done, truncated) == (aviarys_own, 0.0, False, False)
            assert '{"name"' not in obs.content and "JSON" not in obs.content  # not peerstep's text-call hint
        await env.close()
    # in process too: the environment-level reply of every ToolEnvironment
    question = QuestionEnvironment("2+2?")
    await question.reset()
    assert await question.step({"role": "assistant", "content": "4"}) == (
        [{"role": "user", "content": NO_TOOL_CALLS}], 0.0, False, False)


async def test_served_opening_names_the_finish_tool_offered_and_the_task_id() -> None:
    with AviaryServer(peerstep_task_dataset(FinalAnswerTasks())) as server:
        env = TaskDatasetClient(server.url).get_new_env_by_idx(0)
        (opening,), tools = await env.reset()
        assert [t.info.name for t in tools] == ["calculate", "final_answer"]
        assert opening.role == "user" and opening.content == (
            "Answer the question below. Use the tools offered (calculate) as you need them; when you have the "
            "final answer, call final_answer with its value argument set to the final answer only.\n\n"
            "What is 6 * 7?")
        assert "submit_answer" not in opening.content
        assert opening.info == {"task_id": "fa-0"}  # the task id reaches the client
        (obs,), reward, done, _ = await env.step(ToolRequestMessage(tool_calls=[
            ToolCall.from_name("final_answer", value="42")]))
        assert (obs.content, reward, done) == ("Recorded.", 1.0, True)
        assert obs.info is not None and set(obs.info) == {*TOOL_INFO_KEYS, "episode"}
        await env.close()
        # and by id, through Aviary's task_kwargs
        started = httpx.post(f"{server.url}/start", json={"task_kwargs": {"task_id": "fa-0"}})
        assert started.status_code == 200
        httpx.post(f"{server.url}/close", json=started.json())


async def test_served_finish_observation_has_the_same_info_as_a_tool() -> None:
    with AviaryServer(peerstep_task_dataset(ArithmeticQuestions())) as server:
        env = TaskDatasetClient(server.url).get_new_env_by_idx(1)
        (opening,), _ = await env.reset()
        assert opening.content == INSTRUCTIONS + "\n\nWhat is 2 to the 10th power?"
        assert opening.info == {"task_id": "q1"}
        (calc,), _, _, _ = await env.step(ToolRequestMessage(tool_calls=[
            ToolCall.from_name("calculate", expression="2**10")]))
        (final,), reward, done, _ = await env.step(ToolRequestMessage(tool_calls=[
            ToolCall.from_name("submit_answer", answer="1024")]))
        assert (final.content, reward, done) == ("Answer submitted: 1024", 1.0, True)
        assert calc.info is not None and final.info is not None
        assert set(final.info) - {"episode"} == set(calc.info) == TOOL_INFO_KEYS
        # the outcome, gold included, only once the episode is over
        assert "episode" not in calc.info and "1024" not in str(opening.info)
        assert final.info["episode"] == {"task_id": "q1", "gold": "1024", "answer": "1024", "correct": True}
        assert final.info["ok"] is True and final.info["timed_out"] is False and final.info["latency_s"] >= 0
        await env.close()


def test_served_bad_requests_get_4xx_with_a_reason() -> None:
    with AviaryServer(peerstep_task_dataset(ArithmeticQuestions())) as server:
        def post(path: str, **kwargs: Any) -> httpx.Response:
            return httpx.post(f"{server.url}{path}", timeout=30, **kwargs)

        out_of_range = post("/start", json={"task_idx": 2})
        assert out_of_range.status_code == 404
        assert out_of_range.json() == {"detail": "task index 2 is out of range: 'arithmetic' has 2 tasks, "
                                                 "indices 0 to 1"}
        assert post("/start", json={"task_idx": -1}).status_code == 404
        unknown_id = post("/start", json={"task_kwargs": {"task_id": "nope"}})
        assert unknown_id.status_code == 404 and "no task with id 'nope'" in unknown_id.json()["detail"]
        no_index = post("/start", json={})
        assert no_index.status_code == 400 and "start one by task_idx" in no_index.json()["detail"]
        assert post("/start", json={"task_kwargs": {"seed": 1}}).status_code == 400
        not_a_number = post("/start", json={"task_idx": "first"})
        assert not_a_number.status_code == 422 and "valid integer" in not_a_number.text
        not_json = post("/start", content=b"{task_idx: 0", headers={"content-type": "application/json"})
        assert not_json.status_code == 422 and "JSON decode error" in not_json.text
        env_id = post("/start", json={"task_idx": 0}).json()["env_id"]
        early = post("/step", json={"env_id": env_id, "action": {"role": "assistant", "content": "hi"}})
        assert early.status_code == 409 and "before reset" in early.json()["detail"]
        assert post("/step", json={"env_id": env_id}).status_code == 422  # no action
        assert post("/step", json={"env_id": "nope", "action": {"role": "assistant", "content": "hi"}}
                    ).status_code == 404
        assert post("/close", json={"env_id": env_id}).status_code == 200
        assert running_envs(server.url) == []
    assert_stopped(server)


async def test_peerstep_datasets_by_aviary_name() -> None:
    from aviary.env import TASK_DATASET_REGISTRY

    assert {"peerstep-math", "peerstep-wiki-qa", "peerstep-taskfile"} <= set(TASK_DATASET_REGISTRY)
    assert not any(name.startswith("peerstep-aviary-") for name in TASK_DATASET_REGISTRY)
    tasks = TaskDataset.from_name("peerstep-math", limit=2, python=False)
    assert len(tasks) == 2
    gold = load_dataset("math", limit=2, python=False).info(0).gold
    env = tasks.get_new_env_by_idx(0)
    (opening,), _ = await env.reset()
    assert "call submit_answer with its answer argument" in opening.content
    assert opening.info == {"task_id": await env.get_id()}
    (obs,), reward, done, _ = await env.step(ToolRequestMessage(tool_calls=[
        ToolCall.from_name("submit_answer", answer=gold)]))
    assert (reward, done) == (1.0, True) and obs.info is not None and set(obs.info) == {*TOOL_INFO_KEYS, "episode"}
    await env.close()
    with pytest.raises(ValueError, match="Unknown environment name"):
        TaskDataset.from_name("peerstep-no-such-dataset")


def test_server_start_failure_is_clear() -> None:
    with AviaryServer(LedgerTasks()) as first, pytest.raises(PeerstepError, match="failed to start"):
        AviaryServer(LedgerTasks(), port=first.port).start()
    assert_stopped(first)


# --- without fhaviary -------------------------------------------------------------------------------


def test_missing_fhaviary_gives_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aviary", None)
    monkeypatch.setitem(sys.modules, "aviary.core", None)
    adapter._require_aviary.cache_clear()
    try:
        with pytest.raises(AviaryNotInstalledError, match=r"pip install 'peerstep\[aviary\]'") as caught:
            AviaryEnvironment(lambda: LedgerEnv())
        assert isinstance(caught.value, PeerstepError) and isinstance(caught.value, ImportError)
    finally:
        adapter._require_aviary.cache_clear()


def test_module_imports_and_registers_without_fhaviary() -> None:
    """The eval runner imports the module to register ``aviary-calculator``; that must work without Aviary."""
    script = (
        "import sys\n"
        "sys.modules['aviary'] = None\n"
        "import peerstep.environments.aviary as a\n"
        "from peerstep.environments import dataset_names, load_dataset\n"
        "assert 'aviary-calculator' in dataset_names()\n"
        "try:\n"
        "    load_dataset('aviary-calculator')\n"
        "except a.AviaryNotInstalledError as exc:\n"
        "    print(exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "Aviary support needs the fhaviary package: pip install 'peerstep[aviary]'"
