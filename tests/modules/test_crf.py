"""CRF against brute force enumeration of every tag path on short sequences."""

import itertools

import pytest
import torch

from mabsa.modules.crf import CRF, bio_transition_constraints
from mabsa.tagging import JMASA, MATE


def brute_force(crf: CRF, emissions: torch.Tensor, length: int):
    """(log Z, best path, marginals) of one sequence by enumerating all L**length paths."""
    L = crf.num_tags
    trans, start = crf._trans(), crf._start()
    scores, paths = [], []
    for path in itertools.product(range(L), repeat=length):
        s = start[path[0]] + emissions[0, path[0]]
        for t in range(1, length):
            s = s + trans[path[t - 1], path[t]] + emissions[t, path[t]]
        s = s + crf.end[path[-1]]
        scores.append(s)
        paths.append(path)
    scores = torch.stack(scores)
    log_z = torch.logsumexp(scores, 0)
    best = list(paths[int(scores.argmax())])
    probs = torch.exp(scores - log_z)
    marg = torch.zeros(length, L)
    for p, path in zip(probs, paths):
        for t, y in enumerate(path):
            marg[t, y] += p
    return log_z, best, marg


@pytest.mark.parametrize("constrained", [False, True])
def test_crf_matches_brute_force_on_padded_batch(constrained):
    torch.manual_seed(0)
    labels = MATE.labels  # O, B, I
    allowed = bio_transition_constraints(labels) if constrained else (None, None)
    crf = CRF(len(labels), *allowed)
    with torch.no_grad():
        crf.transitions.normal_()
        crf.start.normal_()
        crf.end.normal_()
    lengths = [4, 1, 3, 2]
    T = max(lengths)
    emissions = torch.randn(len(lengths), T, len(labels))
    mask = torch.tensor([[t < n for t in range(T)] for n in lengths])
    tags = torch.randint(0, len(labels), (len(lengths), T))
    if constrained:
        tags[:] = 1  # B B B ... is allowed everywhere
    nll = crf(emissions, tags, mask, reduction="none")
    decoded = crf.decode(emissions, mask)
    marginals = crf.marginals(emissions, mask)
    for b, n in enumerate(lengths):
        log_z, best, marg = brute_force(crf, emissions[b, :n], n)
        score = crf.path_score(emissions[b : b + 1, :n], tags[b : b + 1, :n], torch.ones(1, n, dtype=torch.bool))
        assert torch.allclose(nll[b], log_z - score[0], atol=1e-4)
        assert decoded[b] == best
        assert torch.allclose(marginals[b, :n], marg, atol=1e-4)
        assert torch.all(marginals[b, n:] == 0)


def test_constraints_forbid_inside_without_begin():
    allowed, start = bio_transition_constraints(JMASA.labels)
    ids = JMASA.label2id
    assert not start[ids["I-POS"]] and start[ids["B-POS"]] and start[ids["O"]]
    assert not allowed[ids["O"], ids["I-NEU"]]
    assert not allowed[ids["B-POS"], ids["I-NEG"]]
    assert allowed[ids["B-NEG"], ids["I-NEG"]] and allowed[ids["I-NEG"], ids["I-NEG"]]
    crf = CRF(len(JMASA.labels), allowed, start)
    emissions = torch.zeros(1, 3, len(JMASA.labels))
    emissions[0, :, ids["I-POS"]] = 5.0  # I-POS everywhere is the best unconstrained path
    path = crf.decode(emissions, torch.ones(1, 3, dtype=torch.bool))[0]
    assert path[0] != ids["I-POS"]
    for a, b in zip(path, path[1:]):
        assert allowed[a, b]


def test_training_lowers_nll_and_learns_the_path():
    torch.manual_seed(1)
    crf = CRF(3)
    emissions = torch.zeros(2, 4, 3, requires_grad=True)
    tags = torch.tensor([[1, 2, 0, 0], [0, 1, 2, 2]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    opt = torch.optim.Adam([emissions, *crf.parameters()], lr=0.1)
    first = None
    for _ in range(100):
        loss = crf(emissions, tags, mask)
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first / 5
    assert crf.decode(emissions, mask) == [[1, 2, 0], [0, 1, 2, 2]]


def test_empty_first_position_is_rejected():
    crf = CRF(3)
    with pytest.raises(ValueError, match="unmasked first position"):
        crf.decode(torch.zeros(1, 2, 3), torch.tensor([[False, True]]))


def test_marginals_of_a_near_certain_label_stay_probabilities():
    """With one label far ahead (emission 20 per word, as a confident model gives), float32
    rounding of alpha + beta - log Z can exceed 0; the marginals must still lie in [0, 1]."""
    torch.manual_seed(0)
    labels = JMASA.labels
    crf = CRF(len(labels), *bio_transition_constraints(labels))
    with torch.no_grad():
        crf.transitions.normal_(0, 1.0)
    emissions = torch.zeros(4, 9, len(labels))
    emissions[..., labels.index("B-NEU")] = 20.0
    mask = torch.ones(4, 9, dtype=torch.bool)
    mask[1, 5:] = False
    probs = crf.marginals(emissions, mask)
    assert probs.min() >= 0 and probs.max() <= 1
    assert torch.allclose(probs[0].sum(-1), torch.ones(9), atol=1e-4)
    assert torch.allclose(probs[:, :, labels.index("B-NEU")][mask], torch.ones(int(mask.sum())), atol=1e-4)


@torch.no_grad()
def test_soft_nll_is_the_expected_nll_under_independent_soft_targets():
    """Brute force: E_{y ~ prod_t q_t}[-log p(y)] over every path of an unconstrained CRF, on a
    padded batch; and a one-hot allowed path under BIO constraints gives forward()'s NLL."""
    torch.manual_seed(3)
    crf, lengths = CRF(3), [4, 2]
    emissions = torch.randn(2, 4, 3)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]]).bool()
    q = torch.softmax(torch.randn(2, 4, 3), -1)
    expected = []
    for b, n in enumerate(lengths):
        log_z = crf.log_partition(emissions[b : b + 1, :n], mask[b : b + 1, :n])
        total = torch.zeros(())
        for path in itertools.product(range(3), repeat=n):
            s = crf._start()[path[0]] + emissions[b, 0, path[0]] + crf.end[path[-1]]
            s = s + sum(crf._trans()[path[t - 1], path[t]] + emissions[b, t, path[t]] for t in range(1, n))
            weight = torch.prod(torch.stack([q[b, t, y] for t, y in enumerate(path)]))
            total = total + weight * (log_z[0] - s)
        expected.append(total)
    assert float(crf.soft_nll(emissions, q, mask)) == pytest.approx(float(torch.stack(expected).mean()), abs=1e-5)

    allowed, allowed_start = bio_transition_constraints(JMASA.labels)
    bio = CRF(len(JMASA.labels), allowed, allowed_start)
    tags = torch.tensor([[1, 2, 0, 5], [3, 4, 0, 0]])  # B-POS I-POS O B-NEG / B-NEU I-NEU
    emissions = torch.randn(2, 4, len(JMASA.labels))
    one_hot = torch.nn.functional.one_hot(tags, len(JMASA.labels)).float()
    assert float(bio.soft_nll(emissions, one_hot, mask)) == pytest.approx(float(bio(emissions, tags, mask)), abs=1e-4)
