using WinTok.Results;

namespace WinTok.Jobs.Schedules;

/// <summary>A baseline value of one metric and the evaluation it comes from.</summary>
internal sealed record BaselineValue(double Value, Guid JobId);

/// <summary>One metric found worse than its baseline by more than its threshold.</summary>
/// <param name="Allowed">The allowed worsening in the metric's units (a relative threshold applied to the baseline).</param>
internal sealed record RegressionFinding(string Metric, double Value, BaselineValue Baseline, double Allowed, string Direction);

/// <summary>The regression decisions, as pure functions.</summary>
internal static class RegressionRules
{
    /// <summary>
    /// Whether <paramref name="value"/> is worse than <paramref name="baseline"/> by more than <paramref name="allowed"/>:
    /// above baseline + allowed when lower is better, below baseline - allowed when higher is. Worsening by exactly the
    /// threshold is tolerated.
    /// </summary>
    public static bool IsRegression(double value, double baseline, double allowed, string direction) => direction switch
    {
        MetricDirection.Lower => value > baseline + allowed,
        MetricDirection.Higher => value < baseline - allowed,
        _ => throw new ArgumentOutOfRangeException(nameof(direction), direction, "direction is lower or higher"),
    };

    /// <summary>Whether <paramref name="candidate"/> is better than <paramref name="best"/> in <paramref name="direction"/>.</summary>
    public static bool IsBetter(double candidate, double best, string direction) =>
        direction == MetricDirection.Lower ? candidate < best : candidate > best;

    /// <summary>The regressions among <paramref name="values"/>: each thresholded metric with a finite value and a baseline.</summary>
    public static IReadOnlyList<RegressionFinding> Find(IReadOnlyDictionary<string, double> values, IReadOnlyDictionary<string, BaselineValue> baseline,
        IReadOnlyList<MetricThreshold> thresholds) =>
        [.. from threshold in thresholds
            where values.TryGetValue(threshold.Metric, out var value) && double.IsFinite(value) && baseline.ContainsKey(threshold.Metric)
            let value = values[threshold.Metric]
            let reference = baseline[threshold.Metric]
            let allowed = threshold.AllowedFrom(reference.Value)
            where IsRegression(value, reference.Value, allowed, threshold.Direction)
            select new RegressionFinding(threshold.Metric, value, reference, allowed, threshold.Direction)];

    /// <summary>
    /// The best value so far of each thresholded metric over <paramref name="earlier"/> evaluations (finite values only),
    /// with the evaluation it comes from; the first of equal values wins.
    /// </summary>
    public static IReadOnlyDictionary<string, BaselineValue> BestSoFar(IEnumerable<EvaluationRecord> earlier, IReadOnlyList<MetricThreshold> thresholds)
    {
        var best = new Dictionary<string, BaselineValue>(StringComparer.Ordinal);
        foreach (var evaluation in earlier)
        {
            foreach (var threshold in thresholds)
            {
                if (!evaluation.Metrics.TryGetValue(threshold.Metric, out var value) || !double.IsFinite(value)) continue;
                if (!best.TryGetValue(threshold.Metric, out var current) || IsBetter(value, current.Value, threshold.Direction))
                    best[threshold.Metric] = new BaselineValue(value, evaluation.JobId);
            }
        }
        return best;
    }

    /// <summary>Every finite value of one pinned evaluation as the baseline.</summary>
    public static IReadOnlyDictionary<string, BaselineValue> Pinned(EvaluationRecord baseline) =>
        baseline.Metrics.Where(m => double.IsFinite(m.Value)).ToDictionary(m => m.Key, m => new BaselineValue(m.Value, baseline.JobId), StringComparer.Ordinal);
}
