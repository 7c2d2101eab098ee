namespace WinTok.Jobs.Evaluate;

/// <summary>Which way is better for each metric an evaluation records.</summary>
public static class MetricDirections
{
    /// <summary>True when a lower value is better (distances: rFID, LPIPS); false when higher is (PSNR, SSIM, accuracy, usage).</summary>
    public static bool LowerIsBetter(string metric) => metric == "rfid" || metric.StartsWith("lpips", StringComparison.Ordinal);

    /// <summary>The metrics in the order tables show them.</summary>
    public static IReadOnlyList<string> Order { get; } =
        ["rfid", "psnr", "ssim", "lpips_alex", "lpips_vgg", "zeroshot_top1", "zeroshot_top5", "usage_percent", "usage_entropy", "usage_perplexity"];

    /// <summary>Sorts metric names as <see cref="Order"/> does, unknown ones last by name.</summary>
    public static IEnumerable<string> Sorted(IEnumerable<string> metrics) =>
        metrics.Distinct().OrderBy(m => Order.IndexOf(m) is var i && i >= 0 ? i : int.MaxValue).ThenBy(m => m, StringComparer.Ordinal);

    private static int IndexOf(this IReadOnlyList<string> list, string value)
    {
        for (var i = 0; i < list.Count; i++) if (list[i] == value) return i;
        return -1;
    }
}
