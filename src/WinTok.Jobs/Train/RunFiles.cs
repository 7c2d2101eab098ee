using System.Globalization;
using System.Text.RegularExpressions;

namespace WinTok.Jobs.Train;

/// <summary>
/// The names in a training run's output folder: the reference's checkpoint names (<c>ckpt-ep{E}-iter{I}.pth</c> after
/// iteration I of epoch E, <c>ckpt-last.pth</c> at the end) with their <c>.safetensors</c> weights beside them, the run's
/// record (<c>run.json</c>), the data plan (<c>train-data.jsonl</c>), <c>tensorboard/</c> and <c>evaluations/</c>.
/// </summary>
public static partial class RunFiles
{
    public const string RunRecord = "run.json";
    public const string DataPlan = "train-data.jsonl";
    public const string TensorBoard = "tensorboard";
    public const string Evaluations = "evaluations";
    public const string LastCheckpoint = "ckpt-last.pth";

    /// <summary>The checkpoint written after global iteration <paramref name="finished"/> (0-based).</summary>
    public static string CheckpointName(long finished, long iterationsPerEpoch, long maxIterations) =>
        finished + 1 >= maxIterations
            ? LastCheckpoint
            : string.Create(CultureInfo.InvariantCulture, $"ckpt-ep{finished / iterationsPerEpoch}-iter{finished % iterationsPerEpoch}.pth");

    /// <summary>The safetensors weights beside a checkpoint.</summary>
    public static string WeightsName(string checkpoint) => Path.ChangeExtension(checkpoint, ".safetensors");

    /// <summary>
    /// The run's checkpoints in <paramref name="folder"/>, newest first by the iteration after which each was written
    /// (<c>ckpt-last.pth</c> first); files being written (<c>.tmp</c>) are not checkpoints.
    /// </summary>
    public static IReadOnlyList<string> Checkpoints(string folder, long iterationsPerEpoch, long maxIterations)
    {
        if (!Directory.Exists(folder)) return [];
        return Directory.EnumerateFiles(folder, "ckpt-*.pth")
            .Select(path => (Path: path, Next: NextIteration(Path.GetFileName(path), iterationsPerEpoch, maxIterations)))
            .Where(c => c.Next is not null)
            .OrderByDescending(c => c.Next)
            .Select(c => c.Path)
            .ToList();
    }

    /// <summary>The iteration a run continues with after the checkpoint named <paramref name="name"/>, or null for another file.</summary>
    public static long? NextIteration(string name, long iterationsPerEpoch, long maxIterations)
    {
        if (name == LastCheckpoint) return maxIterations;
        var match = CheckpointPattern().Match(name);
        return match.Success
            ? long.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) * iterationsPerEpoch + long.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture) + 1
            : null;
    }

    /// <summary>What makes <paramref name="output"/> another run's folder (its record or a checkpoint), or null when it holds none.</summary>
    public static string? HoldsRun(string output)
    {
        if (!Directory.Exists(output)) return null;
        if (File.Exists(Path.Combine(output, RunRecord))) return RunRecord;
        return Directory.EnumerateFiles(output, "ckpt-*.pth").Select(Path.GetFileName).FirstOrDefault();
    }

    [GeneratedRegex(@"^ckpt-ep(\d+)-iter(\d+)\.pth$", RegexOptions.CultureInvariant)]
    private static partial Regex CheckpointPattern();
}
