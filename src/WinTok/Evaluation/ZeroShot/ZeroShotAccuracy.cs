using static TorchSharp.torch;

namespace WinTok.Evaluation.ZeroShot;

/// <summary>Correct top-1 and top-5 counts over the images seen so far, and the accuracies they give.</summary>
/// <param name="Top1">Images whose best class is the label.</param>
/// <param name="Top5">Images whose label is among the five best classes.</param>
/// <param name="Total">Images counted.</param>
public sealed record ZeroShotCounts(long Top1, long Top5, long Total)
{
    public static ZeroShotCounts Zero { get; } = new(0, 0, 0);

    /// <summary>Top-1 accuracy in percent, as the reference prints it (0 before any image).</summary>
    public double Top1Percent => Total == 0 ? 0 : 100.0 * Top1 / Total;

    /// <summary>Top-5 accuracy in percent.</summary>
    public double Top5Percent => Total == 0 ? 0 : 100.0 * Top5 / Total;

    /// <summary>Counts of two shards or workers together.</summary>
    public ZeroShotCounts Add(ZeroShotCounts other) => new(Top1 + other.Top1, Top5 + other.Top5, Total + other.Total);

    /// <summary>
    /// This batch's counts, as the reference's <c>(pred[:, 0] == targets).sum()</c> and
    /// <c>(pred == targets.unsqueeze(1)).any(dim=1).sum()</c>, for predictions (B, k) best first and labels (B), on
    /// any one device (two scalars come back to the host).
    /// </summary>
    public static ZeroShotCounts Count(Tensor topK, Tensor targets)
    {
        if (topK.dim() != 2 || targets.dim() != 1 || topK.shape[0] != targets.shape[0])
            throw new ArgumentException($"Predictions ({string.Join(", ", topK.shape)}) and targets ({string.Join(", ", targets.shape)}) must be (B, k) and (B)");
        using var scope = NewDisposeScope();
        var labels = targets.to(topK.device).to(ScalarType.Int64);
        long top1 = topK.select(1, 0).eq(labels).sum().item<long>();
        long top5 = topK.eq(labels.unsqueeze(1)).any(1).sum().item<long>();
        return new ZeroShotCounts(top1, top5, topK.shape[0]);
    }
}
