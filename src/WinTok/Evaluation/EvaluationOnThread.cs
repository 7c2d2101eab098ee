using System.Text.Json;
using WinTok.Evaluation.ZeroShot;
using WinTok.Inference;

namespace WinTok.Evaluation;

/// <summary>
/// An evaluation's work as a caller off the model thread sees it: each call runs on the <see cref="ModelThread"/> and
/// returns plain values, so job handlers evaluate without touching tensors.
/// </summary>
public sealed class PartitionEvaluator
{
    private readonly ModelThread thread;
    private readonly PartitionEvaluation partition;

    private PartitionEvaluator(ModelThread thread, PartitionEvaluation partition) => (this.thread, this.partition) = (thread, partition);

    /// <summary>
    /// Loads the model of <paramref name="source"/> (if it is not the one served) and this evaluation's networks (once per
    /// served model and settings), and starts a partition.
    /// </summary>
    public static async Task<PartitionEvaluator> BeginAsync(ModelThread thread, ModelSource source, EvaluationSettings settings, int gridImages,
        CancellationToken cancellationToken)
    {
        await thread.LoadAsync(source, cancellationToken);
        var partition = await thread.RunAsync(() =>
        {
            thread.Model(source);
            var session = thread.Attachment($"evaluation|{settings}", (model, device) => EvaluationSession.Create(model, device, settings));
            return session.Begin(gridImages);
        }, cancellationToken);
        return new PartitionEvaluator(thread, partition);
    }

    /// <summary>Reconstructs and measures one batch of preprocessed levels (see <see cref="PartitionEvaluation.Add"/>).</summary>
    public Task<BatchValues> AddAsync(byte[] levels, int count, int[] labels, CancellationToken cancellationToken) =>
        thread.RunAsync(() => partition.Add(levels, count, labels), cancellationToken);

    /// <summary>The partition's outcome; the evaluator is done afterwards.</summary>
    public Task<PartitionOutcome> FinishAsync(CancellationToken cancellationToken) => thread.RunAsync(() =>
    {
        using (partition) return partition.Finish();
    }, cancellationToken);

    /// <summary>Releases the partition's device memory when it ends early (its outcome is then lost).</summary>
    public Task AbandonAsync() => thread.RunAsync(() =>
    {
        partition.Dispose();
        return true;
    }, CancellationToken.None);
}

/// <summary>An evaluation's final numbers, by metric name, with what the numbers alone do not say.</summary>
/// <param name="Values">e.g. <c>rfid</c>, <c>psnr</c>, <c>ssim</c>, <c>lpips_alex</c>, <c>zeroshot_top1</c>, <c>usage_percent</c>.</param>
/// <param name="Details">Per metric, JSON: per-codebook usage and top tokens, the per-image means beside the reference's batch means.</param>
/// <param name="RealStatistics">The merged real-image statistics when the partitions computed them (to cache), else null.</param>
public sealed record FinalMetrics(IReadOnlyDictionary<string, double> Values, IReadOnlyDictionary<string, string> Details, byte[]? RealStatistics);

/// <summary>Merges the partitions' partial statistics into the evaluation's numbers (the Fréchet distance on the model thread's device).</summary>
public static class EvaluationSummaries
{
    public static Task<FinalMetrics> SummarizeAsync(ModelThread thread, IReadOnlyList<byte[]> partials, byte[]? cachedRealStatistics,
        ZeroShotCounts? zeroShot, CancellationToken cancellationToken) => thread.RunAsync(() =>
    {
        var merged = new PartialMetrics();
        foreach (var bytes in partials)
        {
            using var stream = new MemoryStream(bytes, writable: false);
            merged.Merge(PartialMetrics.ReadFrom(stream));
        }
        FeatureStatistics? cached = null;
        if (cachedRealStatistics is not null)
        {
            using var stream = new MemoryStream(cachedRealStatistics, writable: false);
            cached = FeatureStatistics.ReadFrom(stream);
        }
        var summary = merged.Summarize(cached, device: thread.Device);
        var values = new Dictionary<string, double>
        {
            ["psnr"] = summary.Psnr,
            ["ssim"] = summary.Ssim,
        };
        var details = new Dictionary<string, string>
        {
            ["psnr"] = JsonSerializer.Serialize(new { reference_batch_means = summary.Psnr, per_image_mean = summary.PsnrPerImage }),
            ["ssim"] = JsonSerializer.Serialize(new { reference_batch_means = summary.Ssim, per_image_mean = summary.SsimPerImage }),
        };
        foreach (var (variant, value) in summary.Lpips) values[$"lpips_{variant.ToString().ToLowerInvariant()}"] = value;
        if (summary.Fid is { } fid) values["rfid"] = fid;
        if (zeroShot is { Total: > 0 } counts)
        {
            values["zeroshot_top1"] = counts.Top1Percent;
            values["zeroshot_top5"] = counts.Top5Percent;
        }
        if (summary.Codebook is { } usage)
        {
            values["usage_percent"] = usage.UsedPercent;
            values["usage_entropy"] = usage.EntropyNats;
            values["usage_perplexity"] = usage.Perplexity;
            details["usage"] = JsonSerializer.Serialize(new
            {
                total = usage.Total, vocabulary = usage.VocabularySize, used = usage.Used,
                top = usage.Top.Take(20).Select(t => new { id = t.Id, count = t.Count }),
                per_codebook = summary.PerCodebook?.Select(c => new { used_percent = c.UsedPercent, entropy = c.EntropyNats, perplexity = c.Perplexity }),
            });
        }
        byte[]? real = null;
        if (cached is null && merged.RealFeatures is { } computed)
        {
            using var stream = new MemoryStream();
            computed.WriteTo(stream);
            real = stream.ToArray();
        }
        return new FinalMetrics(values, details, real);
    }, cancellationToken);
}
