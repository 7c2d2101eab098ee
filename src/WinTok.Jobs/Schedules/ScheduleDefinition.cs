using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using WinTok.Data.Corpus;
using WinTok.Jobs.Checkpoints;
using WinTok.Jobs.Evaluate;
using WinTok.Results;

namespace WinTok.Jobs.Schedules;

/// <summary>
/// The evaluation a schedule submits at each slot, the same every time so numbers compare: the dataset and its
/// preprocessing, the metrics and their weights, the precision. Only the checkpoint and the output folder change.
/// </summary>
/// <param name="Output">The root under which each job writes its own folder, <c>{slot}-{checkpoint name}</c>.</param>
internal sealed record ScheduledEvaluation(
    string Dataset,
    string Output,
    IReadOnlyList<string> Metrics,
    ModelChoice Model,
    string? Weights,
    string? TextTower,
    string Precision,
    string? DatasetName,
    CorpusKind? Kind,
    int FilesPerPartition)
{
    /// <summary>The request for one checkpoint at one slot, with the job's own output folder.</summary>
    public EvaluateRequest ToRequest(string scheduleName, string checkpoint, DateTimeOffset slotAt) =>
        new(checkpoint, Dataset, OutputFor(slotAt, checkpoint), Model, Metrics, Weights, TextTower, Precision,
            DatasetName, Kind, FilesPerPartition, scheduleName);

    /// <summary><c>{Output}/{yyyyMMdd-HHmmss}-{checkpoint file name without extension}</c>: distinct per slot and checkpoint.</summary>
    public string OutputFor(DateTimeOffset slotAt, string checkpoint)
    {
        var name = checkpoint.TrimEnd('/')[(checkpoint.TrimEnd('/').LastIndexOfAny(['/', '\\']) + 1)..];
        var stem = name.Contains('.', StringComparison.Ordinal) ? name[..name.LastIndexOf('.')] : name;
        var folder = $"{slotAt.UtcDateTime.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture)}-{stem}";
        return FileStores.IsBlobLocation(Output) ? $"{Output.TrimEnd('/')}/{folder}" : Path.Combine(Output, folder);
    }

    public string ToJson() => JsonSerializer.Serialize(this, SchedulesJsonContext.Default.ScheduledEvaluation);

    public static ScheduledEvaluation FromJson(string json) =>
        JsonSerializer.Deserialize(json, SchedulesJsonContext.Default.ScheduledEvaluation) ?? throw new JsonException("The schedule's evaluation is empty");
}

/// <summary>A stored schedule, parsed: its cron, its evaluation, its thresholds.</summary>
internal sealed partial record ScheduleDefinition(
    string Name,
    CronSchedule Cron,
    string TargetMode,
    string Target,
    ScheduledEvaluation Evaluation,
    string MissedPolicy,
    string? Baseline,
    IReadOnlyList<MetricThreshold> Thresholds,
    string? WebhookUrl,
    bool Paused,
    DateTimeOffset WatermarkAt)
{
    /// <summary>Whether slots look for new checkpoints under a prefix (rather than evaluate one fixed checkpoint).</summary>
    public bool Watches => TargetMode is ScheduleTargetMode.Newest or ScheduleTargetMode.Every;

    public static ScheduleDefinition From(ScheduleRecord record) => new(
        record.Name,
        CronSchedule.Parse(record.Cron, record.TimeZone),
        record.TargetMode,
        record.Target,
        ScheduledEvaluation.FromJson(record.EvaluationJson),
        record.MissedPolicy,
        record.Baseline,
        ThresholdsFromJson(record.ThresholdsJson),
        record.WebhookUrl,
        record.Paused,
        record.WatermarkAt);

    public static string ThresholdsToJson(IReadOnlyList<MetricThreshold> thresholds) =>
        JsonSerializer.Serialize([.. thresholds], SchedulesJsonContext.Default.MetricThresholdArray);

    public static IReadOnlyList<MetricThreshold> ThresholdsFromJson(string json) =>
        JsonSerializer.Deserialize(json, SchedulesJsonContext.Default.MetricThresholdArray) ?? [];

    /// <summary>A schedule name: letters, digits, '.', '_' and '-', starting with a letter or digit (it names folders and log lines).</summary>
    public static string? NameProblem(string name) => NamePattern().IsMatch(name)
        ? null
        : $"schedule name '{name}' must be 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit";

    /// <summary>The host of a webhook URL, the only part of it ever logged or shown (the rest may hold a token).</summary>
    public static string WebhookHost(string url) => Uri.TryCreate(url, UriKind.Absolute, out var uri) ? uri.Host : "(invalid URL)";

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$", RegexOptions.CultureInvariant)]
    private static partial Regex NamePattern();
}

/// <summary>Source-generated JSON of what schedules store and send.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, UseStringEnumConverter = true,
    RespectNullableAnnotations = true, RespectRequiredConstructorParameters = true)]
[JsonSerializable(typeof(ScheduledEvaluation))]
[JsonSerializable(typeof(MetricThreshold[]))]
[JsonSerializable(typeof(RegressionPayload))]
internal sealed partial class SchedulesJsonContext : JsonSerializerContext;
