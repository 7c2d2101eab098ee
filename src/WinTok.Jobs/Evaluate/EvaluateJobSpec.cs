using System.Text.Json;
using System.Text.RegularExpressions;
using WinTok.Data.Corpus;
using WinTok.Jobs.Checkpoints;
using WinTok.Jobs.Tokenize;

namespace WinTok.Jobs.Evaluate;

/// <summary>The metrics an evaluation can compute, by the names users type.</summary>
public static class EvaluationMetrics
{
    public const string Rfid = "rfid";
    public const string Psnr = "psnr";
    public const string Ssim = "ssim";
    public const string Lpips = "lpips";
    public const string ZeroShot = "zeroshot";
    public const string Usage = "usage";

    public static IReadOnlyList<string> All { get; } = [Rfid, Psnr, Ssim, Lpips, ZeroShot, Usage];

    /// <summary>Parses a comma-separated list; unknown names throw with the list of known ones.</summary>
    public static IReadOnlyList<string> Parse(string list)
    {
        var names = list.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(n => n.ToLowerInvariant()).Distinct().ToList();
        if (names.Count == 0) throw new ArgumentException("no metrics given");
        if (names.FirstOrDefault(n => !All.Contains(n)) is { } unknown)
            throw new ArgumentException($"unknown metric '{unknown}'; choose from {string.Join(", ", All)}");
        return [.. All.Where(names.Contains)];
    }
}

/// <summary>How the model runs while evaluated: float32 as the reference evaluates, or our bf16 serving path.</summary>
public static class EvaluationPrecision
{
    public const string Float32 = "fp32";
    public const string BFloat16 = "bf16";

    public static IReadOnlyList<string> All { get; } = [Float32, BFloat16];
}

/// <summary>
/// What an evaluation job was asked to measure, fixed at submission: the checkpoint, the dataset and its
/// preprocessing, the metrics and the weights they need, and the protocol string that says which numbers compare.
/// </summary>
/// <param name="Dataset">The images: a folder, an ImageFolder (labels for zero-shot) or WebDataset tars, local or blob.</param>
/// <param name="DatasetName">A short name results are grouped by (e.g. <c>imagenet-val</c>).</param>
/// <param name="Output">Where metrics.json, the per-image Parquet, the grid PNG and the partial statistics go.</param>
/// <param name="Weights">The folder of the metric networks' weight files (docs/evaluation.md), or null when no metric needs one.</param>
/// <param name="TextTower">WinTok zero-shot: the HF SigLIP2 folder (text tower and tokenizer); UniTok brings its own.</param>
/// <param name="Precision">fp32 (the reference's) or bf16 (our serving path).</param>
/// <param name="Protocol">Everything that makes two evaluations' numbers comparable, as one string.</param>
/// <param name="Preprocessing">The image preprocessing, as shards record it.</param>
/// <param name="ScheduleName">The schedule that submitted the job, if any.</param>
/// <param name="TrainingEpoch">From a <c>ckpt-ep{E}-iter{I}.pth</c> name, for trends over training.</param>
/// <param name="TrainingIteration">From a <c>ckpt-ep{E}-iter{I}.pth</c> name.</param>
/// <param name="RealStatistics">
/// rFID: where the real images' Inception statistics of this dataset, preprocessing and network are cached (they do not
/// depend on the model); <paramref name="RealStatisticsCached"/> says whether they existed at submission, in which case
/// no worker runs the Inception on real images and the finisher reads them; otherwise the finisher writes them there.
/// </param>
public sealed record EvaluateJobSpec(
    string Dataset,
    string DatasetName,
    CorpusKind Kind,
    int FilesPerPartition,
    string Output,
    CheckpointReference Checkpoint,
    ModelChoice Model,
    int ImageSize,
    IReadOnlyList<string> Metrics,
    string? Weights,
    string? TextTower,
    string Precision,
    string Protocol,
    string Preprocessing,
    string? ScheduleName,
    int? TrainingEpoch,
    long? TrainingIteration,
    string? RealStatistics,
    bool RealStatisticsCached,
    DateTimeOffset CreatedUtc)
{
    public const string JobKind = "evaluate";

    /// <summary>The protocol's version: raise it whenever a metric's computation changes, so old and new numbers never mix.</summary>
    public const string ProtocolVersion = "wintok-eval/1";

    public bool Wants(string metric) => Metrics.Contains(metric);

    public string ToJson() => JsonSerializer.Serialize(this, JobsJsonContext.Default.EvaluateJobSpec);

    public static EvaluateJobSpec FromJson(string json) =>
        JsonSerializer.Deserialize(json, JobsJsonContext.Default.EvaluateJobSpec) ?? throw new JsonException("The evaluate job spec is empty");

    /// <summary>
    /// The protocol string: the version (which fixes each metric's definition: skimage PSNR/SSIM on uint8-truncated
    /// images, lpips v0.1 alex+vgg, pytorch-fid Inception features of float images after a bilinear resize to 299,
    /// OpenAI's 1000 classes x 80 templates), the model's precision and the preprocessing. Two evaluations' values of a
    /// metric compare only when their protocols are equal; which metrics each computed does not matter.
    /// </summary>
    public static string DescribeProtocol(string precision, string preprocessing) => $"{ProtocolVersion}|model={precision}|{preprocessing}";
}

/// <summary>Training position from a checkpoint's file name as the reference's trainer writes it.</summary>
public static partial class TrainingCheckpointNames
{
    /// <summary>(epoch, iteration) from <c>ckpt-ep{E}-iter{I}.pth</c> (any extension, any folder), or nulls.</summary>
    public static (int? Epoch, long? Iteration) Parse(string location)
    {
        var match = Pattern().Match(location[(location.LastIndexOf('/') + 1)..]);
        return match.Success ? (int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture),
            long.Parse(match.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture)) : (null, null);
    }

    [GeneratedRegex(@"^ckpt-ep(\d+)-iter(\d+)\.", RegexOptions.CultureInvariant)]
    private static partial Regex Pattern();
}
