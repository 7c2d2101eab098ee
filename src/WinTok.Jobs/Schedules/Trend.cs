using WinTok.Results;

namespace WinTok.Jobs.Schedules;

/// <summary>How a trend orders its evaluations.</summary>
internal enum TrendOrder
{
    /// <summary>By training position (epoch, iteration), evaluations without one last, then by time.</summary>
    Iteration,

    /// <summary>By when each evaluation was recorded.</summary>
    Time,
}

/// <summary>Evaluations whose numbers compare (one dataset, one protocol), in trend order, with the metrics they hold.</summary>
internal sealed record TrendSeries(string DatasetName, string Protocol, IReadOnlyList<EvaluationRecord> Evaluations, IReadOnlyList<string> Metrics)
{
    /// <summary>One metric's values in trend order (null where an evaluation lacks it).</summary>
    public IReadOnlyList<double?> Values(string metric) =>
        [.. Evaluations.Select(e => e.Metrics.TryGetValue(metric, out var v) ? v : (double?)null)];
}

/// <summary>Trends of evaluations over time and over training, as pure functions for the CLI and the dashboard.</summary>
internal static class Trend
{
    private const string Bars = "▁▂▃▄▅▆▇█";

    /// <summary>The order metrics are shown in: reconstruction, perception, semantics, codebook.</summary>
    private static readonly string[] DisplayOrder =
        ["rfid", "psnr", "ssim", "lpips_alex", "lpips_vgg", "zeroshot_top1", "zeroshot_top5", "usage_percent", "usage_entropy", "usage_perplexity"];

    /// <summary>
    /// Groups <paramref name="evaluations"/> into series of comparable numbers (same dataset name and protocol; the
    /// series with the newest evaluation first) in <paramref name="order"/>, with their metrics in the evaluation's
    /// usual order, or only <paramref name="metrics"/> when given.
    /// </summary>
    public static IReadOnlyList<TrendSeries> Series(IEnumerable<EvaluationRecord> evaluations, TrendOrder order, IReadOnlyCollection<string>? metrics = null) =>
        [.. evaluations
            .GroupBy(e => (e.DatasetName, e.Protocol))
            .OrderByDescending(g => g.Max(e => e.CreatedAt))
            .Select(g =>
            {
                var ordered = order == TrendOrder.Time
                    ? g.OrderBy(e => e.CreatedAt).ToList()
                    : [.. g.OrderBy(e => e.TrainingEpoch ?? int.MaxValue).ThenBy(e => e.TrainingIteration ?? long.MaxValue).ThenBy(e => e.CreatedAt)];
                var present = ordered.SelectMany(e => e.Metrics.Keys).Distinct(StringComparer.Ordinal)
                    .Where(m => metrics is null || metrics.Contains(m))
                    .OrderBy(MetricRank).ThenBy(m => m, StringComparer.Ordinal).ToList();
                return new TrendSeries(g.Key.DatasetName, g.Key.Protocol, ordered, present);
            })];

    /// <summary>
    /// One character per value, from ▁ (the series' minimum) to █ (its maximum); a flat series is all ▄ and a missing or
    /// non-finite value a space.
    /// </summary>
    public static string Sparkline(IReadOnlyList<double?> values)
    {
        var finite = values.Where(v => v is { } x && double.IsFinite(x)).Select(v => v!.Value).ToList();
        if (finite.Count == 0) return new string(' ', values.Count);
        var (min, max) = (finite.Min(), finite.Max());
        return new string([.. values.Select(v => v is not { } x || !double.IsFinite(x) ? ' '
            : max == min ? Bars[3]
            : Bars[(int)Math.Round((x - min) / (max - min) * (Bars.Length - 1))])]);
    }

    /// <summary>The best value of a series and where it is, by the metric's direction (unknown metrics: none).</summary>
    public static (double Value, EvaluationRecord Evaluation)? Best(TrendSeries series, string metric)
    {
        if (!MetricDirection.Known.TryGetValue(metric, out var direction)) return null;
        (double Value, EvaluationRecord Evaluation)? best = null;
        foreach (var evaluation in series.Evaluations)
        {
            if (!evaluation.Metrics.TryGetValue(metric, out var value) || !double.IsFinite(value)) continue;
            if (best is null || RegressionRules.IsBetter(value, best.Value.Value, direction)) best = (value, evaluation);
        }
        return best;
    }

    private static int MetricRank(string metric)
    {
        var index = Array.IndexOf(DisplayOrder, metric);
        return index < 0 ? int.MaxValue : index;
    }
}
