using WinTok.Dashboard.Queries;
using WinTok.Results;

namespace WinTok.Dashboard.Pages;

/// <summary>One evaluation's page: what was measured, its values, its regressions and its reconstruction grid.</summary>
public sealed record EvaluationView(EvaluationRecord Evaluation, IReadOnlyList<RegressionRecord> Regressions, bool HasGrid);

/// <summary>One metric of a comparison: both values, B minus A, and whether B is better (+1), worse (-1) or neither.</summary>
public sealed record MetricComparison(string Metric, double? A, double? B, double? Delta, int Verdict);

/// <summary>Two evaluations side by side (B against A).</summary>
public sealed record CompareView(EvaluationRecord A, EvaluationRecord B, IReadOnlyList<MetricComparison> Metrics, bool HasGridA, bool HasGridB)
{
    /// <summary>Numbers only compare under the same protocol and dataset; the page says so when they differ.</summary>
    public bool Comparable => A.Protocol == B.Protocol && A.DatasetName == B.DatasetName;

    public static IReadOnlyList<MetricComparison> Compare(EvaluationRecord a, EvaluationRecord b) =>
        MetricCatalog.Order(a.Metrics.Keys.Concat(b.Metrics.Keys)).Select(metric =>
        {
            double? va = a.Metrics.TryGetValue(metric, out var x) ? x : null;
            double? vb = b.Metrics.TryGetValue(metric, out var y) ? y : null;
            return va is { } left && vb is { } right
                ? new MetricComparison(metric, left, right, right - left, MetricCatalog.Compare(metric, right, left))
                : new MetricComparison(metric, va, vb, null, 0);
        }).ToList();
}
