namespace WinTok.Dashboard.Pages;

/// <summary>
/// The evaluation metrics as recorded (<c>metrics.metric_name</c>) and which way is better for each, for comparisons
/// and highlighting. Unknown names are shown too, without a direction.
/// </summary>
public static class MetricCatalog
{
    public static IReadOnlyList<string> Known { get; } =
    [
        "rfid", "psnr", "ssim", "lpips_alex", "lpips_vgg", "zeroshot_top1", "zeroshot_top5", "usage_percent", "usage_entropy", "usage_perplexity",
    ];

    private static readonly HashSet<string> LowerIsBetter = ["rfid", "lpips_alex", "lpips_vgg"];

    /// <summary>+1 when higher is better, -1 when lower is, 0 when unknown.</summary>
    public static int Direction(string metric) => LowerIsBetter.Contains(metric) ? -1 : Known.Contains(metric) ? 1 : 0;

    /// <summary>Metric names in the catalogue's order, then any others alphabetically.</summary>
    public static IReadOnlyList<string> Order(IEnumerable<string> names)
    {
        var distinct = names.Distinct().ToList();
        return [.. Known.Where(distinct.Contains), .. distinct.Where(n => !Known.Contains(n)).Order(StringComparer.Ordinal)];
    }

    /// <summary>Whether <paramref name="candidate"/> is better (+1), worse (-1) or equal/unknown (0) than <paramref name="reference"/>.</summary>
    public static int Compare(string metric, double candidate, double reference) =>
        candidate == reference ? 0 : Math.Sign(candidate - reference) * Direction(metric);
}
