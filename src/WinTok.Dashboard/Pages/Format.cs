using System.Globalization;

namespace WinTok.Dashboard.Pages;

/// <summary>How numbers, times and durations read on the pages (invariant culture; the API returns raw values).</summary>
public static class Format
{
    public static string Time(DateTimeOffset? value) =>
        value is { } t ? t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture) : "";

    public static string Duration(TimeSpan? value) => value switch
    {
        null => "",
        { TotalSeconds: < 1 } v => $"{v.TotalMilliseconds:0}ms",
        { TotalMinutes: < 1 } v => $"{v.TotalSeconds:0.0}s",
        { TotalHours: < 1 } v => $"{(int)v.TotalMinutes}m{v.Seconds:00}s",
        TimeSpan v => $"{(int)v.TotalHours}h{v.Minutes:00}m",
    };

    public static string Milliseconds(long? ms) => ms is { } value ? Duration(TimeSpan.FromMilliseconds(value)) : "";

    public static string Rate(double? perSecond) => perSecond is { } r ? r.ToString(r >= 100 ? "0" : "0.0", CultureInfo.InvariantCulture) : "";

    /// <summary>Metric values with 4 significant digits (PSNR 27.31, SSIM 0.8123, rFID 1.234).</summary>
    public static string Value(double value) => value.ToString("G4", CultureInfo.InvariantCulture);

    public static string Signed(double value) => (value > 0 ? "+" : "") + value.ToString("G4", CultureInfo.InvariantCulture);

    public static string Count(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    public static string Bytes(long? value) => value switch
    {
        null => "",
        < 1024 => $"{value} B",
        < 1024 * 1024 => $"{value / 1024.0:0.0} KiB",
        < 1024L * 1024 * 1024 => $"{value / (1024.0 * 1024):0.0} MiB",
        _ => $"{value / (1024.0 * 1024 * 1024):0.00} GiB",
    };

    public static string ShortHash(string sha256) => sha256.Length > 12 ? sha256[..12] : sha256;

    public static string Percent(long done, long total) =>
        total <= 0 ? "" : (100.0 * done / total).ToString("0.#", CultureInfo.InvariantCulture) + "%";
}
