using System.Globalization;

namespace WinTok.Dashboard.Plots;

/// <summary>One evaluation on a trend: its x (seconds since the epoch, or a training iteration) and the metric's value.</summary>
public sealed record PlotPoint(double X, double Y, string Label, string Href, bool Regression);

/// <summary>A metric's values over time or over training, drawn server-side as SVG by <c>TrendPlot</c>.</summary>
public sealed record TrendPlotModel(string Metric, bool XIsTime, IReadOnlyList<PlotPoint> Points);

/// <summary>
/// Where things go on a trend plot: a fixed-size SVG canvas, data ranges padded so no point sits on the frame, and
/// "nice" ticks (1, 2 or 5 times a power of ten). Pure arithmetic, tested on its own.
/// </summary>
public static class PlotScale
{
    public const double Width = 560;
    public const double Height = 220;
    public const double Left = 64;
    public const double Right = 16;
    public const double Top = 14;
    public const double Bottom = 34;

    /// <summary>The range to draw for <paramref name="values"/>: 5% margins, a unit-wide window around a single value.</summary>
    public static (double Min, double Max) Range(IReadOnlyCollection<double> values)
    {
        if (values.Count == 0) return (0, 1);
        var (min, max) = (values.Min(), values.Max());
        if (min == max) return (min - Math.Max(Math.Abs(min) * 0.05, 0.5), max + Math.Max(Math.Abs(max) * 0.05, 0.5));
        var margin = (max - min) * 0.05;
        return (min - margin, max + margin);
    }

    public static double X(double value, (double Min, double Max) range) =>
        Left + (value - range.Min) / (range.Max - range.Min) * (Width - Left - Right);

    /// <summary>SVG y grows downwards: the range's maximum is at the top.</summary>
    public static double Y(double value, (double Min, double Max) range) =>
        Top + (range.Max - value) / (range.Max - range.Min) * (Height - Top - Bottom);

    /// <summary>About <paramref name="count"/> round values inside the range.</summary>
    public static IReadOnlyList<double> Ticks((double Min, double Max) range, int count = 5)
    {
        var span = range.Max - range.Min;
        if (span <= 0 || double.IsNaN(span) || double.IsInfinity(span)) return [range.Min];
        var raw = span / count;
        var power = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        var step = (raw / power) switch { < 1.5 => 1, < 3.5 => 2, < 7.5 => 5, _ => 10 } * power;
        // Rounded to the step's decimals, so 0.1 steps read 1.2 and not 1.2000000000000002.
        var decimals = Math.Clamp(-(int)Math.Floor(Math.Log10(step)), 0, 15);
        var ticks = new List<double>();
        for (var i = Math.Ceiling(range.Min / step); i * step <= range.Max + step * 1e-9; i++) ticks.Add(Math.Round(i * step, decimals));
        return ticks;
    }

    /// <summary>An SVG coordinate, invariant culture, two decimals.</summary>
    public static string Svg(double value) => value.ToString("0.##", CultureInfo.InvariantCulture);

    /// <summary>
    /// A tick label: for time axes a UTC time as fine as the axis' span needs (days, minutes or seconds), a compact
    /// number otherwise.
    /// </summary>
    public static string Label(double value, bool isTime, double span = 0) => isTime
        ? DateTimeOffset.FromUnixTimeMilliseconds((long)(value * 1000)).UtcDateTime.ToString(
            span > 3 * 86400 ? "yyyy-MM-dd" : span > 600 ? "MM-dd HH:mm" : "HH:mm:ss", CultureInfo.InvariantCulture)
        : value.ToString(Math.Abs(value) >= 10000 ? "0.##e0" : "G4", CultureInfo.InvariantCulture);
}
