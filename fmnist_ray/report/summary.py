"""The written findings at the top of a sweep's page, stated from `findings` with their noise."""

from __future__ import annotations

import math

from fmnist_ray.report.analysis import reused_from, status_counts
from fmnist_ray.report.findings import SweepFindings, sweep_findings
from fmnist_ray.report.formatting import count_noun, join_words, points
from fmnist_ray.report.load import SweepResults
from fmnist_ray.report.overfit import overfitting_sentences, regularizer_sentences

# The result of the study this tool grew from.
REFERENCE = {"model": "deep CNN with batch norm", "test_accuracy": 0.931, "test_loss": 0.278}
# Published Fashion-MNIST test accuracies, for placing a convolutional sweep's best trial.
PUBLISHED = (("2-conv CNNs", 0.92, 0.93), ("ResNet-18", 0.949, 0.949),
             ("WRN-28-10", 0.959, 0.959), ("WRN-28-10 + random erasing", 0.963, 0.963))
CONVOLUTIONAL = ("cnn", "deep_cnn_bn", "resnet")  # models the reference results are about


def _chosen_lines(results: SweepResults, found: SweepFindings) -> list[str]:
    chosen = found.chosen
    if chosen is None:
        return ["No trial learned, so none is chosen."]
    metric = results.metric.replace("best_val_", "validation ")
    low, high = chosen.interval
    seeds = f"mean of {count_noun(chosen.trials, 'trial')}" if chosen.trials > 1 else "one trial"
    if chosen.confirmed_seeds:
        seeds = f"mean of {count_noun(chosen.confirmed_seeds, 'fresh seed')} at full length"
    line = (f"Chosen on {metric} (the test set never chooses): {chosen.label}; its test "
            f"accuracy {chosen.test_accuracy:.4f} ({seeds}; 95% interval {low:.4f}-{high:.4f}, "
            f"seed noise and test-set sampling), test loss {chosen.test_loss:.4f}.")
    if chosen.confirmed_seeds and chosen.search_test_accuracy is not None:
        line += (f" Confirmed after the search with seeds it never saw; the search's own "
                 f"figure for it, {chosen.search_test_accuracy:.4f}, is optimistic (it won "
                 f"partly by luck).")
    elif chosen.search:
        line += (" That is the search's own figure: optimistic (the winner of a search won "
                 "partly by luck) until confirmed with fresh seeds (`confirm_seeds` in the "
                 "spec, or `fmnist-ray extend RESULTS --set confirm_seeds=3`).")
    if chosen.equivalent_to:
        line += (f" On test it is equivalent to {join_words(chosen.equivalent_to)} (within "
                 f"±{points(found.margin)} points): the choice among them does not matter.")
    return [line]


def _noise_line(found: SweepFindings) -> str:
    noise, se = found.noise, found.test_se
    sampling = (f" The 10k test images add a sampling error of ±{points(se)} points (1 SE) to "
                f"any single figure, which counts when it is set against results from "
                f"elsewhere." if math.isfinite(se) else "")
    if found.search:
        return ("Trials here are single draws at different lengths: no seed replicates, so "
                "differences are judged by rank tests at common epochs." + sampling)
    if not noise.known:
        return ("One seed per configuration: there is no estimate of the seed-to-seed noise, "
                "so no difference between settings can be called real." + sampling)
    n = found.chosen.trials if found.chosen else 2
    return (f"Noise: the seed-to-seed SD of test accuracy is {points(noise.sd)} points (pooled, "
            f"{noise.df} degrees of freedom), so with {n} seeds a difference of "
            f"{points(found.detectable())} points is detected with 80% power (Welch test at 5%); "
            f"smaller true differences often come out undecided. Each comparison uses its own "
            f"groups' variances (Welch) and its 95% interval over seeds; verdicts are "
            f"Holm-corrected over the page's {found.comparisons} comparisons"
            + (f" at 5% / {found.looks} looks (seeds were added until decided)"
               if found.looks > 1 else "") + ", and `equivalent` "
            f"means within ±{points(found.margin)} points (TOST; the spec's analysis.margin)."
            + sampling)


def _reference_lines(found: SweepFindings) -> list[str]:
    """The study's reference and published results, only for a convolutional choice."""
    chosen = found.chosen
    if chosen is None or chosen.model not in CONVOLUTIONAL:
        return []
    low, high = chosen.interval
    ref = REFERENCE["test_accuracy"]
    where = ("above" if low > ref else "below" if high < ref else "not distinguishable from")
    lines = [f"Against the study's reference ({REFERENCE['model']}: test accuracy {ref}, test "
             f"loss {REFERENCE['test_loss']}): {(chosen.test_accuracy - ref) * 100:+.2f} points "
             f"({where} it at 95%), test loss {chosen.test_loss - REFERENCE['test_loss']:+.3f}."]
    parts = []
    for name, low_p, high_p in PUBLISHED:
        shown = f"{low_p}-{high_p}" if low_p != high_p else f"{high_p}"
        nearest = min(max(chosen.test_accuracy, low_p), high_p)
        parts.append(f"within {name} ({shown})" if nearest == chosen.test_accuracy else
                     f"{(chosen.test_accuracy - nearest) * 100:+.1f} points against {name} "
                     f"({shown})")
    lines.append(f"Against published results: {'; '.join(parts)}.")
    return lines


def _reuse_lines(results: SweepResults) -> list[str]:
    """How many trials came from earlier sweeps' stored results instead of training."""
    trials = results.trials
    reused = reused_from(trials)
    if reused.empty:
        return []
    sources = sorted({source.rsplit("/", 1)[0] for source in reused})
    return [f"{len(reused)} of {count_noun(len(trials), 'trial')} were reused, not trained: the "
            f"same settings, data and training code ran to their end before (in "
            f"{join_words(sources)}), and their stored results are shown as they were."]


def summarize(results: SweepResults, found: SweepFindings | None = None) -> list[str]:
    """The written findings at the top of a report, one sentence (or a few) per item."""
    found = found or sweep_findings(results)
    lines = [f"{status_counts(results.trials)}."]
    lines += _reuse_lines(results)
    lines += _chosen_lines(results, found)
    lines.append(_noise_line(found))
    if len(results.axes) > 1 and not found.search:
        lines.append("Per axis, means pool the seeds and every value of the other axes:")
    lines += [a.sentence for a in found.axes]
    lines += [c.sentence() for c in found.cost]
    lines += found.search_notes + [s for r in found.rungs for s in r.sentences]
    if found.failures:
        lines.append("Runs that failed (listed, never ranked, and kept off the shared loss "
                     "charts): " + "; ".join(found.failures) + ".")
    lines += overfitting_sentences(results, found.overfitting)
    lines += regularizer_sentences(results, found.pairs)
    lines += _reference_lines(found)
    if results.missing:
        lines.append(f"{count_noun(len(results.missing), 'thing')} missing from these results: "
                     f"see \"What is missing\" below.")
    return lines
