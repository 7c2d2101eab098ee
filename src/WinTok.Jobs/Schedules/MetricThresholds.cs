using System.Globalization;

namespace WinTok.Jobs.Schedules;

/// <summary>Which way a metric improves (<c>regressions.direction</c>).</summary>
internal static class MetricDirection
{
    public const string Lower = "lower";
    public const string Higher = "higher";

    /// <summary>
    /// The metrics an evaluation records (the evaluate handler's names) and which way each improves: reconstruction
    /// distances (rFID, LPIPS) are better lower; fidelity and accuracy (PSNR, SSIM, zero-shot) and codebook usage higher.
    /// </summary>
    public static IReadOnlyDictionary<string, string> Known { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["rfid"] = Lower,
        ["lpips_alex"] = Lower,
        ["lpips_vgg"] = Lower,
        ["psnr"] = Higher,
        ["ssim"] = Higher,
        ["zeroshot_top1"] = Higher,
        ["zeroshot_top5"] = Higher,
        ["usage_percent"] = Higher,
        ["usage_entropy"] = Higher,
        ["usage_perplexity"] = Higher,
    };
}

/// <summary>
/// How much worse than its baseline a metric may get before it is a regression: <paramref name="Value"/> in the metric's
/// units, or as a fraction of the baseline when <paramref name="Relative"/> (given as a percentage).
/// </summary>
internal sealed record MetricThreshold(string Metric, double Value, bool Relative, string Direction)
{
    /// <summary>The allowed worsening, in the metric's units, from <paramref name="baseline"/>.</summary>
    public double AllowedFrom(double baseline) => Relative ? Value * Math.Abs(baseline) : Value;

    /// <summary>The threshold as users write it: <c>0.05</c> or <c>2%</c>.</summary>
    public string Describe() => Relative
        ? (Value * 100).ToString("0.###", CultureInfo.InvariantCulture) + "%"
        : Value.ToString("0.######", CultureInfo.InvariantCulture);
}

/// <summary>The per-metric thresholds of a schedule: defaults for the quality metrics, overridden by <c>--threshold</c>.</summary>
internal static class MetricThresholds
{
    /// <summary>
    /// Worsening tolerated by default, relative to the baseline: rFID and LPIPS vary by a few percent between runs on
    /// small sets, PSNR, SSIM and accuracy much less. Codebook usage is shown in trends but not judged by default.
    /// </summary>
    public static IReadOnlyList<MetricThreshold> Defaults { get; } =
    [
        new("rfid", 0.05, true, MetricDirection.Lower),
        new("lpips_alex", 0.05, true, MetricDirection.Lower),
        new("lpips_vgg", 0.05, true, MetricDirection.Lower),
        new("psnr", 0.01, true, MetricDirection.Higher),
        new("ssim", 0.01, true, MetricDirection.Higher),
        new("zeroshot_top1", 0.01, true, MetricDirection.Higher),
        new("zeroshot_top5", 0.01, true, MetricDirection.Higher),
    ];

    /// <summary>
    /// The defaults with each <c>NAME=VALUE</c> (units), <c>NAME=VALUE%</c> (of the baseline) or <c>NAME=off</c> applied.
    /// </summary>
    /// <exception cref="ArgumentException">An unknown metric or a value that is not a non-negative number.</exception>
    public static IReadOnlyList<MetricThreshold> Parse(IEnumerable<string> overrides)
    {
        var thresholds = Defaults.ToDictionary(t => t.Metric, StringComparer.Ordinal);
        foreach (var item in overrides)
        {
            var parts = item.Split('=', 2, StringSplitOptions.TrimEntries);
            var metric = parts[0].ToLowerInvariant();
            if (parts.Length != 2 || parts[1].Length == 0)
                throw new ArgumentException($"threshold '{item}' is not NAME=VALUE, NAME=VALUE% or NAME=off (e.g. rfid=0.05, psnr=1%)");
            if (!MetricDirection.Known.TryGetValue(metric, out var direction))
                throw new ArgumentException($"threshold '{item}': unknown metric '{metric}'; choose from {string.Join(", ", MetricDirection.Known.Keys)}");
            if (parts[1].Equals("off", StringComparison.OrdinalIgnoreCase))
            {
                thresholds.Remove(metric);
                continue;
            }
            var relative = parts[1].EndsWith('%');
            var number = relative ? parts[1][..^1] : parts[1];
            if (!double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || value < 0 || !double.IsFinite(value))
                throw new ArgumentException($"threshold '{item}': '{parts[1]}' is not a non-negative number (units) or percentage");
            thresholds[metric] = new MetricThreshold(metric, relative ? value / 100 : value, relative, direction);
        }
        return [.. thresholds.Values.OrderBy(t => t.Metric, StringComparer.Ordinal)];
    }
}
