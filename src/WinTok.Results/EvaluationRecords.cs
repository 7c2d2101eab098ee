namespace WinTok.Results;

/// <summary>
/// One finished evaluation: which checkpoint (by content and by path), on which dataset and preprocessing, under which
/// protocol, over how many images; for schedules, which schedule and which point of training. Its metric values are
/// <see cref="MetricValue"/>s recorded with it.
/// </summary>
public sealed record NewEvaluation(
    Guid JobId,
    string CheckpointSha256,
    string CheckpointPath,
    string ModelKind,
    string Dataset,
    string DatasetName,
    string Preprocessing,
    string Protocol,
    long ImageCount,
    string? ScheduleName,
    int? TrainingEpoch,
    long? TrainingIteration);

/// <summary>A metric's value; <paramref name="DetailsJson"/> holds what the value alone does not say (e.g. per-codebook usage).</summary>
public sealed record MetricValue(string Name, double Value, string? DetailsJson = null);

/// <summary>A stored evaluation with its metric values.</summary>
public sealed class EvaluationRecord
{
    public Guid JobId { get; init; }
    public string CheckpointSha256 { get; init; } = "";
    public string CheckpointPath { get; init; } = "";
    public string ModelKind { get; init; } = "";
    public string Dataset { get; init; } = "";
    public string DatasetName { get; init; } = "";
    public string Preprocessing { get; init; } = "";
    public string Protocol { get; init; } = "";
    public long ImageCount { get; init; }
    public string? ScheduleName { get; init; }
    public int? TrainingEpoch { get; init; }
    public long? TrainingIteration { get; init; }
    public DateTimeOffset CreatedAt { get; init; }

    /// <summary>Metric name to value (filled by the repository).</summary>
    public IReadOnlyDictionary<string, double> Metrics { get; set; } = new Dictionary<string, double>();
}

/// <summary>Which evaluations to list; every given field must match.</summary>
/// <param name="CheckpointSha256">A checkpoint's content hash, or a unique start of it.</param>
/// <param name="CheckpointPathPrefix">Checkpoints whose path starts with this (a training run's folder or blob prefix).</param>
/// <param name="ScheduleName">Evaluations a schedule submitted.</param>
/// <param name="Protocol">One protocol only, so numbers compare.</param>
/// <param name="DatasetName">One dataset only.</param>
public sealed record EvaluationFilter(
    string? CheckpointSha256 = null,
    string? CheckpointPathPrefix = null,
    string? ScheduleName = null,
    string? Protocol = null,
    string? DatasetName = null,
    int Limit = 1000);
