using WinTok.Dashboard.Plots;
using WinTok.Dashboard.Queries;
using WinTok.Results;

namespace WinTok.Dashboard.Pages;

/// <summary>The filters of the evaluations page and API (query string names: schedule, checkpoint, dataset, protocol, x).</summary>
public sealed record EvaluationQuery(string? Schedule, string? Checkpoint, string? Dataset, string? Protocol, bool ByIteration)
{
    public EvaluationFilter ToFilter() => new(CheckpointSha256: Checkpoint, ScheduleName: Schedule, Protocol: Protocol, DatasetName: Dataset);

    /// <summary>The query string of these filters (escaped), optionally with the x axis switched.</summary>
    public string QueryString(bool? byIteration = null) => "?" + string.Join("&", new[]
        {
            ("schedule", Schedule), ("checkpoint", Checkpoint), ("dataset", Dataset), ("protocol", Protocol),
            ("x", byIteration ?? ByIteration ? "iteration" : null),
        }.Where(p => !string.IsNullOrEmpty(p.Item2)).Select(p => $"{p.Item1}={Uri.EscapeDataString(p.Item2!)}"));
}

/// <summary>The evaluations page: trends of the chosen evaluations, their table, and the schedules to pick from.</summary>
/// <param name="Evaluations">Newest first.</param>
/// <param name="TrendNote">What the plots show when the evaluations span several datasets or protocols.</param>
public sealed record EvaluationsView(
    EvaluationQuery Query,
    IReadOnlyList<EvaluationRecord> Evaluations,
    IReadOnlyList<string> MetricColumns,
    IReadOnlyList<TrendPlotModel> Plots,
    string? TrendNote,
    IReadOnlyList<(string Name, int Count)> Schedules,
    IReadOnlySet<(Guid JobId, string Metric)> Regressions,
    IReadOnlyList<RegressionRecord> RecentRegressions);

/// <summary>
/// Trends from evaluations: numbers compare only within one protocol and dataset, so the plots follow the (dataset,
/// protocol) of the newest evaluation and say how many others were left out. Pure; tested on its own.
/// </summary>
public static class Trends
{
    /// <param name="evaluations">Oldest first, as the repository lists them.</param>
    public static (IReadOnlyList<TrendPlotModel> Plots, string? Note) Build(IReadOnlyList<EvaluationRecord> evaluations,
        IReadOnlySet<(Guid JobId, string Metric)> regressions, bool byIteration)
    {
        if (evaluations.Count == 0) return ([], null);
        var newest = evaluations[^1];
        var comparable = evaluations.Where(e => e.DatasetName == newest.DatasetName && e.Protocol == newest.Protocol).ToList();
        var others = evaluations.Count - comparable.Count;
        var notes = new List<string>();
        if (others > 0)
            notes.Add($"Plots show dataset {newest.DatasetName} under the newest evaluation's protocol; {others} evaluations of other datasets or protocols are left out (filter by dataset or protocol to see them).");
        var plotted = byIteration ? comparable.Where(e => e.TrainingIteration is not null).ToList() : comparable;
        if (byIteration && plotted.Count < comparable.Count)
            notes.Add($"{comparable.Count - plotted.Count} evaluations have no training iteration (their checkpoint names are not ckpt-ep{{E}}-iter{{I}}) and are left out.");
        var plots = MetricCatalog.Order(plotted.SelectMany(e => e.Metrics.Keys))
            .Select(metric => new TrendPlotModel(metric, !byIteration, plotted
                .Where(e => e.Metrics.ContainsKey(metric))
                .OrderBy(e => byIteration ? e.TrainingIteration!.Value : e.CreatedAt.ToUnixTimeMilliseconds())
                .Select(e => new PlotPoint(
                    byIteration ? e.TrainingIteration!.Value : e.CreatedAt.ToUnixTimeMilliseconds() / 1000.0,
                    e.Metrics[metric],
                    $"{metric} {Format.Value(e.Metrics[metric])} · {Format.ShortHash(e.CheckpointSha256)} · {Format.Time(e.CreatedAt)}"
                        + (e.TrainingIteration is { } it ? $" · iter {it}" : "")
                        + (regressions.Contains((e.JobId, metric)) ? " · regression" : ""),
                    $"/evaluations/{e.JobId}",
                    regressions.Contains((e.JobId, metric))))
                .ToList()))
            .ToList();
        return (plots, notes.Count == 0 ? null : string.Join(" ", notes));
    }
}
