"""The Mermaid component graph (`tools.plan STACK --graph`) and the copy of the lab's in README.md."""

from __future__ import annotations

import random
import re

import pytest

from tools import graph, plan
from tools.graph import component_graph, is_component, mermaid

NODE = re.compile(r'^\s*(?:(c_\w+)\["([^"<]+)<br/>(\w+)"\]|subgraph (c_\w+)\["([^" ]+) \((\w+)\)"\])$')
EDGE = re.compile(r"^  (c_\w+) --> (c_\w+)$")


@pytest.fixture(scope="module")
def lab_diagram(rendered) -> str:
    return mermaid(rendered["lab"].resources())


def _nodes(diagram: str) -> dict[str, tuple[str, str]]:
    return {m[1] or m[4]: (m[2] or m[5], m[3] or m[6]) for line in diagram.splitlines() if (m := NODE.match(line))}


def _edges(diagram: str) -> set[tuple[str, str]]:
    return {(m[1], m[2]) for line in diagram.splitlines() if (m := EDGE.match(line))}


def test_readme_embeds_the_current_lab_diagram(lab_diagram):
    readme = graph.README.read_text()
    assert readme.count(graph.BEGIN_MARKER) == 1
    assert readme.count(graph.END_MARKER) == 1
    assert graph.with_diagram(readme, lab_diagram) == readme, (
        f"README.md's component graph is out of date: run `{graph.REGENERATE}`"
    )


def test_the_diagram_is_stable_whatever_the_registration_order(rendered, lab_diagram):
    resources = rendered["lab"].resources()
    shuffled = list(resources)
    random.Random(7).shuffle(shuffled)
    assert mermaid(list(reversed(resources))) == lab_diagram
    assert mermaid(shuffled) == lab_diagram


def test_every_component_is_drawn_once_and_no_resource_is(rendered, lab_diagram):
    resources = rendered["lab"].resources()
    components = [r for r in resources if is_component(r.type, r.custom)]
    nodes = _nodes(lab_diagram)
    assert len(components) >= 25
    assert sorted(name for name, _ in nodes.values()) == sorted(r.name for r in components)
    assert {type_name for _, type_name in nodes.values()} == {r.type.rsplit(":", 1)[1] for r in components}
    drawn = {name for name, _ in nodes.values()}
    leaves = [r.name for r in resources if not is_component(r.type, r.custom) and r.name not in drawn]
    assert leaves and not [name for name in leaves if f'"{name}<br/>' in lab_diagram or f'"{name} (' in lab_diagram]
    # One subgraph per layer of a top-level component.
    layers = re.findall(r'^  subgraph layer_\w+\["(\w+) layer"\]$', lab_diagram, flags=re.MULTILINE)
    assert layers[:2] == ["hosts", "cluster"]
    assert set(layers) == {"hosts", "cluster", "security", "network", "mesh", "observability", "storage", "apps"}
    assert lab_diagram.count("\n  end\n") == len(layers)


def test_edges_give_the_order_the_lab_comes_up_in(lab_diagram):
    edges = _edges(lab_diagram)
    assert len(edges) >= 20
    for expected in [
        ("c_hosts", "c_cluster"),  # every node needs its VM
        ("c_cluster_master1", "c_cluster_master2"),  # servers join one at a time
        ("c_cluster_master2", "c_cluster_master3"),
        ("c_hosts_preflight", "c_hosts_image"),
        ("c_gateway_api", "c_istio"),  # the Gateway API CRDs before istiod
        ("c_namespaces", "c_istio"),  # labelled namespaces before the charts
        ("c_cluster", "c_namespaces"),  # everything on Kubernetes comes through the cluster's provider
        ("c_cluster", "c_gateway_api"),
        ("c_metallb", "c_ingress"),
    ]:
        assert expected in edges, expected
    # Lifted, not duplicated: nothing points from outside the cluster into one of its nodes.
    assert not [edge for edge in edges if edge[1].startswith("c_cluster_") and not edge[0].startswith("c_cluster_")]
    # Reduced: no edge that a longer path already implies.
    successors: dict[str, set[str]] = {}
    for source, target in edges:
        successors.setdefault(source, set()).add(target)
    for source, target in edges:
        assert not any(target in successors.get(middle, set()) for middle in successors[source] - {target}), (
            source,
            target,
        )


def test_nesting_drops_the_edges_between_a_component_and_its_parts(rendered):
    component_graph_ = component_graph(rendered["lab"].resources())
    parents = {urn: component.parent for urn, component in component_graph_.components.items()}

    def ancestors(urn: str) -> set[str]:
        found = set()
        while parents.get(urn):
            urn = parents[urn]
            found.add(urn)
        return found

    assert component_graph_.edges
    for source, target in component_graph_.edges:
        assert source not in ancestors(target) and target not in ancestors(source)
        assert parents[source] == parents[target]  # lifted to siblings


def test_plan_prints_the_graph_of_any_stack(capsys):
    assert plan.main(["staging", "--graph"]) == 0
    diagram = capsys.readouterr().out
    assert diagram.startswith("flowchart TD\n")
    names = {name for name, _ in _nodes(diagram).values()}
    assert {"stg-server1", "stg-agent2", "cluster-stg-server1", "istio"} <= names
    assert "stg-agent3" not in names


def test_check_and_write_keep_the_readme_in_step(tmp_path, monkeypatch, capsys, lab_diagram):
    readme = tmp_path / "README.md"
    stale = graph.with_diagram(graph.README.read_text(), "flowchart TD\n  c_old[old]\n")
    readme.write_text(stale)
    monkeypatch.setattr(graph, "README", readme)
    monkeypatch.setattr(graph, "lab_diagram", lambda: lab_diagram)
    assert graph.main(["--check"]) == 1
    assert graph.REGENERATE in capsys.readouterr().err
    assert graph.main(["--write"]) == 0
    assert graph.main(["--check"]) == 0
    assert graph.readme_block(lab_diagram) in readme.read_text()
    readme.write_text("# no markers\n")
    assert graph.main(["--check"]) == 1
