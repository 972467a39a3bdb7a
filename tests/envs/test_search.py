"""The search env: grading by hand, the generated world's splits, the tool loop, format
rewards, the baselines, real-data files, and the retriever server in another process."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import httpx
import pytest
from agentrl.envs.answers import last_boxed
from agentrl.envs.search.baselines import (
    closed_book_policy,
    oracle_policy,
    play,
    top_passage_policy,
)
from agentrl.envs.search.env import SearchEnv
from agentrl.envs.search.grading import exact_match, f1_score, normalize_answer
from agentrl.envs.search.world import generated_world

import agentrl
from agentrl.core import Action
from agentrl.engines import ScriptedEngine
from agentrl.errors import InvalidArgument
from agentrl.rollout.manager import RolloutManager
from tests.tools.test_retriever import free_port

# -- grading ------------------------------------------------------------------------


def test_normalisation_is_squads():
    assert normalize_answer("The  Amber Orchard!") == "amber orchard"
    assert normalize_answer("An apple, a day") == "apple day"
    assert normalize_answer("Theatre") == "theatre"  # "the" only as a word


def test_exact_match_and_f1_by_hand():
    assert exact_match("the amber orchard", ["Amber Orchard", "x"]) == 1.0
    assert exact_match("amber", ["Amber Orchard"]) == 0.0
    # guess {amber, orchard, x} vs gold {amber, orchard}: P = 2/3, R = 1, F1 = 0.8
    assert f1_score("amber orchard x", ["The Amber Orchard"]) == pytest.approx(0.8)
    assert f1_score("amber orchard x", ["nothing", "Amber"]) == pytest.approx(0.5)
    assert f1_score("", ["Amber"]) == 0.0
    # HotpotQA's and ARPO's guard: yes / no / noanswer match only themselves
    assert f1_score("yes it is", ["yes"]) == 0.0 and f1_score("Yes.", ["yes"]) == 1.0
    assert f1_score("no", ["no way"]) == 0.0


def test_last_boxed_balances_braces():
    assert last_boxed(r"The final answer is \[ \boxed{Dunmere} \]") == "Dunmere"
    assert last_boxed(r"\boxed{a} then \boxed{{b}c}") == "{b}c"
    assert last_boxed(r"\boxed{open") is None and last_boxed("none") is None


# -- the generated world ----------------------------------------------------------------


def test_splits_are_disjoint_and_test_holds_unseen_people():
    world = generated_world()
    questions = {s: {q.question for q in world.questions[s]} for s in agentrl.SPLITS}
    assert not questions["train"] & questions["valid"]
    assert not questions["train"] & questions["test"]
    assert not questions["valid"] & questions["test"]
    for split in ("train", "valid"):  # no held-out person or book in a train/valid chain
        for q in world.questions[split]:
            assert not set(q.chain) & world.held_out
    unseen = [
        q
        for q in world.questions["test"]
        if q.chain[0] in world.held_out or any(page in world.held_out for page in q.chain)
    ]
    assert len(unseen) >= 100
    for split in agentrl.SPLITS:
        kinds = {q.kind for q in world.questions[split]}
        assert kinds == {"lookup", "bridge", "comparison"}
    # a comparison asked the other way round is the same question
    pairs = {
        split: {(q.question.split(",")[0], frozenset(q.chain)) for q in world.questions[split]}
        for split in agentrl.SPLITS
    }
    assert not pairs["train"] & pairs["valid"] and not pairs["train"] & pairs["test"]
    assert not pairs["valid"] & pairs["test"]


def test_held_out_books_are_never_asked_about_in_training():
    world = generated_world()
    books_of = {}
    for doc in world.corpus:
        if doc["id"].startswith("b"):
            title, _, text = doc["contents"].partition("\n")
            author = text.split(" by ", 1)[1].split(",")[0]
            books_of.setdefault(author, []).append(title.strip('"'))
    held_books = {b for person in world.held_out for b in books_of[person]}
    for q in world.questions["train"]:
        assert not set(q.chain) & held_books  # a question names exactly its chain's first pages


def test_the_world_is_the_same_for_a_seed():
    assert generated_world(num_people=80, seed=1) is generated_world(num_people=80, seed=1)
    a, b = generated_world(num_people=80, seed=1), generated_world(num_people=80, seed=2)
    assert a.corpus != b.corpus
    with pytest.raises(InvalidArgument, match="at least 60"):
        generated_world(num_people=10)


# -- the env --------------------------------------------------------------------------


def test_search_then_answer():
    env = agentrl.make("search", split="test")
    env.reset(options={"task_index": 0})
    question = env.question
    obs, reward, terminated, _, info = env.step(f"search[{question.chain[0]}]")
    assert obs.startswith("<information>Doc 1(Title: ") and obs.endswith("</information>")
    assert f'(Title: "{question.chain[0]}")' in obs
    assert (reward, terminated, info["tool_call"], info["tool_calls.search"]) == (
        0.0,
        False,
        "search",
        1,
    )
    obs, reward, terminated, _, info = env.step(f"answer[ the {question.answers[0]} ]")
    assert (reward, terminated, info["success"], info["em"], info["f1"]) == (1, True, True, 1, 1)
    assert info["kind"] == question.kind and info["tool_calls.search"] == 1


def test_f1_reward_wrap_and_topk():
    env = SearchEnv(split="test", reward="f1", wrap="result", topk=1)
    env.reset(options={"task_index": 0})
    obs, *_ = env.step(f"search[{env.question.chain[0]}]")
    assert obs.startswith("<result>\nDoc 1(Title: ") and "Doc 2" not in obs
    assert obs.endswith("\n</result>")
    _, reward, *_, info = env.step(f"answer[{env.question.answers[0]} and more words]")
    assert info["em"] == 0.0 and reward == info["f1"] > 0


def test_bad_actions_and_settings_are_explained():
    env = agentrl.make("search")
    env.reset(seed=0)
    obs, _, _, _, info = env.step("lookup[x]")
    assert info["invalid_action"] and "<search> query </search>" in obs
    with pytest.raises(InvalidArgument, match="wrap must be one of"):
        SearchEnv(wrap="xml")
    with pytest.raises(InvalidArgument, match="retriever must be one of .* URL"):
        SearchEnv(retriever="faiss")
    with pytest.raises(InvalidArgument, match="record"):
        SearchEnv(retriever="replay")
    with pytest.raises(InvalidArgument, match="turn one of them off"):
        SearchEnv(action_prefix=True, format_reward="search-r1")
    with pytest.raises(InvalidArgument, match="data_dir"):
        SearchEnv(corpus="wiki.jsonl")


def test_a_fork_shares_the_questions_and_copies_the_episode():
    env = agentrl.make("search")
    env.reset(seed=0)
    env.step("search[anything]")
    child = env.fork()
    assert child.questions is env.questions and child.tools is env.tools
    assert child.results == env.results and child.results is not env.results


def test_a_search_that_finds_nothing_says_so():
    env = agentrl.make("search")
    env.reset(seed=0)
    obs, *_ = env.step("search[...]")
    assert obs == "<information>No passage matches '...'; search with other words.</information>"


def test_the_format_hint_shows_concrete_calls():
    from agentrl.rollout.actions import make_parser
    from agentrl.rollout.manager import build_system_prompt

    env = SearchEnv()
    parser = make_parser("tags", env.action_names, env.action_examples)
    prompt = build_system_prompt(env, parser.format_hint())
    assert "<search>birthplace of Ada Lovelace</search> or <answer>London</answer>" in prompt
    bracket = make_parser("bracket", env.action_names, env.action_examples).format_hint()
    assert (
        bracket
        == "Reply with one action, e.g. search[birthplace of Ada Lovelace] or answer[London]."
    )


def test_a_truncated_episode_keeps_its_tool_counts():
    env = agentrl.make("search", max_turns=2)
    env.reset(seed=0)
    env.step("search[anything]")
    *_, truncated, info = env.step("search[something else]")
    assert truncated and info["tool_calls.search"] == 2 and not info["success"]


def test_the_answer_comes_only_from_the_agents_action():
    # The prompt and the instructions hold an example answer; only the action is graded.
    env = agentrl.make("search")
    obs, _ = env.reset(seed=0)
    assert "<answer>" in env.instructions and "<answer>" not in obs
    _, reward, *_ = env.step("answer[Paris]")
    assert reward == 0.0


def reply(text: str, name: str, argument: str) -> Action:
    return Action(f"{name}[{argument}]", name, argument, reply=text)


@pytest.mark.parametrize(
    ("form", "right", "expected"),
    [(True, True, 1.0), (False, True, 0.8), (True, False, 0.2), (False, False, 0.1)],
)
def test_search_r1_format_reward_table(form, right, expected):
    env = SearchEnv(split="test", format_reward="search-r1")
    env.reset(options={"task_index": 0})
    gold = env.question.answers[0]
    think = "<think>look it up</think> " if form else "I will look. "
    env.step(reply(f"{think}<search>{gold}</search>", "search", gold))
    answer = gold if right else "nobody"
    text = f"<think>so</think><answer>{answer}</answer>"
    _, reward, *_, info = env.step(reply(text, "answer", answer))
    assert info["well_formed"] is form and reward == pytest.approx(expected)


def test_search_r1_format_reward_without_an_answer():
    # Search-R1's format needs the final </answer>: no answer is never well formed
    env = SearchEnv(split="test", format_reward="search-r1", max_turns=1)
    env.reset(options={"task_index": 0})
    _, reward, *_ = env.step(reply("<think>a</think><search>x</search>", "search", "x"))
    assert reward == 0.0
    env.reset(options={"task_index": 0})
    _, reward, *_ = env.step(reply("<search>x</search>", "search", "x"))
    assert reward == 0.0


def test_arpo_format_reward():
    env = SearchEnv(split="test", format_reward="arpo", reward="f1")
    gold = None

    def episode(think: str, answer: str) -> float:
        nonlocal gold
        env.reset(options={"task_index": 0})
        gold = env.question.answers[0]
        boxed = answer.format(gold=gold)
        text = f"{think}<answer>{boxed}</answer>"
        return env.step(reply(text, "answer", boxed))[1]

    assert episode("<think>ok</think>", r"The final answer is \[ \boxed{{{gold}}} \]") == 1.0
    assert episode("<think>ok</think>", "{gold}") == -1.0  # not boxed
    assert episode("", r"\boxed{{{gold}}}") == -1.0  # never thought
    assert episode("<think>ok", r"\boxed{{{gold}}}") == -1.0  # unpaired tags
    assert episode("<think>ok</think>", r"\boxed{{nobody}}") == 0.0
    env.reset(options={"task_index": 0})  # actions made outside a rollout carry no reply
    assert env.step(f"answer[\\boxed{{{gold}}}]")[1] == 1.0
    limited = SearchEnv(split="test", format_reward="arpo", max_turns=1)
    limited.reset(options={"task_index": 0})
    assert limited.step("search[x]")[1] == -1.0  # no answer within the budget


# -- baselines ------------------------------------------------------------------------


def test_oracle_solves_every_test_question_and_closed_book_is_near_zero():
    env = agentrl.make("search", split="test")
    tasks = range(0, env.num_tasks("test"), 3)
    oracle = [play(env, oracle_policy, i) for i in tasks]
    assert all(r["em"] == 1.0 for r in oracle)
    closed = [play(env, closed_book_policy(0), i) for i in tasks]
    assert sum(r["em"] for r in closed) / len(closed) < 0.15
    assert all(r["tool_calls.search"] == 0 for r in closed if "tool_calls.search" in r)
    top = [play(env, top_passage_policy, i) for i in tasks]
    by_kind = {}
    for r in top:
        by_kind.setdefault(r["kind"], []).append(r["em"])
    assert sum(by_kind["lookup"]) / len(by_kind["lookup"]) > 0.9  # one search answers these
    assert sum(by_kind["bridge"]) == 0  # and these need a second hop


# -- the user's files -------------------------------------------------------------------

CORPUS = [
    {"id": "0", "contents": '"Ada Lovelace"\nAda Lovelace wrote the first computer program.'},
    {"id": "1", "contents": '"Charles Babbage"\nCharles Babbage designed the Analytical Engine.'},
    {"id": "2", "contents": '"Alan Turing"\nAlan Turing proposed the Turing test in 1950.'},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def flashrag(tmp_path, valid=True):
    write_jsonl(tmp_path / "corpus.jsonl", CORPUS)
    rows = [
        {"id": f"train_{i}", "question": f"who wrote program {i}", "golden_answers": ["Ada"]}
        for i in range(12)
    ]
    write_jsonl(tmp_path / "train.jsonl", rows)
    if valid:
        write_jsonl(
            tmp_path / "dev.jsonl",
            [{"id": "dev_0", "question": "who designed the engine", "golden_answers": ["Babbage"]}],
        )
    test = [
        {
            "id": "test_0",
            "question": "Who proposed the Turing test?",
            "golden_answers": ["Alan Turing", "Turing"],
            "metadata": {},
        },
        {"id": "test_1", "question": "who wrote program 3", "golden_answers": "Ada"},
    ]
    write_jsonl(tmp_path / "test.jsonl", test)
    return tmp_path


def test_a_flashrag_fixture_loads_and_plays(tmp_path):
    data = flashrag(tmp_path)
    with pytest.warns(UserWarning, match="1 train questions .* also in valid or test"):
        env = agentrl.make("search", data_dir=str(data), split="test")
    assert env.split_sizes() == {"train": 11, "valid": 1, "test": 2}
    env.reset(options={"task_index": 0})
    obs, *_ = env.step("search[Turing test]")
    assert obs.startswith('<information>Doc 1(Title: "Alan Turing") Alan Turing proposed')
    *_, info = env.step("answer[turing]")
    assert info["success"] and info["kind"] == "qa"
    agentrl.check_env(agentrl.make("search", data_dir=str(data), split="valid"))  # read once


def test_without_a_valid_file_train_gives_its_last_tenth(tmp_path):
    data = flashrag(tmp_path, valid=False)
    with pytest.warns(UserWarning):
        env = SearchEnv(data_dir=data)
    assert env.split_sizes() == {"train": 10, "valid": 1, "test": 2}  # 12 - 1 - 1 in test


def test_search_r1_parquet_loads(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    flashrag(tmp_path)
    (tmp_path / "test.jsonl").unlink()
    prompt = "Answer the given question. ... Question: Who proposed the Turing test?\n"
    rows = [
        {
            "data_source": "nq",
            "prompt": [{"role": "user", "content": prompt}],
            "ability": "fact-reasoning",
            "reward_model": {"style": "rule", "ground_truth": {"target": ["Alan Turing"]}},
            "extra_info": {"split": "test", "index": 0},
        }
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "test.parquet")
    env = SearchEnv(data_dir=tmp_path, split="test")
    assert env.reset(options={"task_index": 0})[0] == "Question: Who proposed the Turing test?"
    assert env.step("answer[Alan Turing]")[1] == 1.0


def test_numbers_bom_and_questions_shared_by_valid_and_test(tmp_path):
    (tmp_path / "train.jsonl").write_text(
        "\ufeff"
        + "".join(
            json.dumps({"question": f"q{i}", "golden_answers": [i]}) + "\n" for i in range(5)
        ),
        encoding="utf-8",
    )
    write_jsonl(
        tmp_path / "valid.jsonl",
        [{"question": "v", "golden_answers": 1950}, {"question": "t", "golden_answers": ["x"]}],
    )
    write_jsonl(tmp_path / "test.jsonl", [{"question": "T!", "golden_answers": [3.5]}])
    with pytest.warns(UserWarning, match="1 valid questions .* also in test"):
        env = SearchEnv(data_dir=tmp_path, split="valid", retriever="replay", record=tmp_path / "r")
    assert env.split_sizes() == {"train": 5, "valid": 1, "test": 1}
    assert env.questions["valid"][0].answers == ("1950",)
    assert env.questions["train"][2].answers == ("2",)


def test_bad_files_are_named(tmp_path):
    with pytest.raises(InvalidArgument, match="is not one"):
        SearchEnv(data_dir=tmp_path / "missing")
    write_jsonl(tmp_path / "train.jsonl", [{"question": "q", "golden_answers": ["a"]}])
    with pytest.raises(InvalidArgument, match="no test QA file"):
        SearchEnv(data_dir=tmp_path)
    write_jsonl(tmp_path / "test.jsonl", [{"question": "q2"}])
    with pytest.raises(
        InvalidArgument, match=r"test.jsonl:1 has no usable gold answers \(got None"
    ):
        SearchEnv(data_dir=tmp_path)
    write_jsonl(tmp_path / "test.jsonl", [{"question": "q2", "golden_answers": ["b"]}])
    with pytest.raises(InvalidArgument, match="no valid file and too few train questions"):
        SearchEnv(data_dir=tmp_path)


# -- the retriever in another process ----------------------------------------------------


@pytest.fixture
def server():
    """`agentrl serve-retriever` on the generated corpus, in a process of its own."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "agentrl.cli", "serve-retriever", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                if process.poll() is not None:
                    raise RuntimeError(process.stderr.read().decode()) from None
                time.sleep(0.05)
        else:
            raise RuntimeError("agentrl serve-retriever did not answer /health within 30 s")
        yield process, url
    finally:
        process.kill()
        process.wait()
        process.stderr.close()


def test_the_server_gives_the_embedded_observations_and_its_death_is_recorded(server, tokenizer):
    process, url = server
    local, remote = SearchEnv(split="test"), SearchEnv(split="test", retriever=url)
    for index in range(0, 60, 6):
        seen = []
        for env in (local, remote):
            env.reset(options={"task_index": index})
            seen.append([env.step(oracle_policy(env))[0] for _ in range(4) if not env.done])
        assert seen[0] == seen[1]

    calls = []

    def act(prompt_ids, _index):  # the server dies before the ninth reply's search
        calls.append(1)
        if len(calls) == 9:  # two episodes of four searches each are done
            process.kill()
            process.wait()
        return "<search>The Amber Orchard</search>"

    manager = RolloutManager(
        ScriptedEngine(tokenizer, act),
        tokenizer,
        "agentrl/Search-v0",
        {"retriever": url},
        split="test",
        samples_per_task=2,
        max_concurrent=1,
        seed=0,
    )
    try:
        episodes = asyncio.run(manager.run([0, 1, 2]))
    finally:
        manager.close()
    assert len(episodes) == 6
    failed = [e for e in episodes if e.error is not None]
    assert failed and all("RetrieverUnavailable" in e.error for e in failed)
    assert any(e.error is None for e in episodes)
