using Cronos;

namespace WinTok.Jobs.Schedules;

/// <summary>
/// A cron expression in a time zone (Cronos): five fields (minute hour day month weekday), six with seconds first, or a
/// macro such as <c>@daily</c>. Times are computed in the zone and returned in UTC, with daylight-saving transitions
/// handled as cron users expect: a time skipped by a spring-forward jump runs at the first instant after it, a time
/// that occurs twice on a fall-back night runs once (the first), and interval fields (<c>*/30</c>) follow the wall clock.
/// </summary>
internal sealed class CronSchedule
{
    private readonly CronExpression expression;

    private CronSchedule(string text, CronExpression expression, TimeZoneInfo zone)
    {
        Text = text;
        this.expression = expression;
        Zone = zone;
    }

    public string Text { get; }

    public TimeZoneInfo Zone { get; }

    /// <summary>Parses <paramref name="cron"/> in the IANA zone <paramref name="timeZone"/>.</summary>
    /// <exception cref="ArgumentException">The expression or the zone is not valid, saying which and why.</exception>
    public static CronSchedule Parse(string cron, string timeZone)
    {
        var text = cron.Trim();
        var fields = text.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length;
        CronExpression expression;
        try
        {
            expression = CronExpression.Parse(text, fields == 6 ? CronFormat.IncludeSeconds : CronFormat.Standard);
        }
        catch (CronFormatException e)
        {
            throw new ArgumentException($"'{cron}' is not a cron expression (minute hour day-of-month month day-of-week, e.g. \"0 3 * * *\"): {e.Message}", e);
        }
        TimeZoneInfo zone;
        try
        {
            zone = TimeZoneInfo.FindSystemTimeZoneById(timeZone);
        }
        catch (Exception e) when (e is TimeZoneNotFoundException or InvalidTimeZoneException)
        {
            throw new ArgumentException($"'{timeZone}' is not a time zone this machine knows (IANA names such as Etc/UTC or Europe/Berlin)", e);
        }
        return new CronSchedule(text, expression, zone);
    }

    /// <summary>The first time strictly after <paramref name="after"/>, or null when the expression never fires again.</summary>
    public DateTimeOffset? Next(DateTimeOffset after) =>
        expression.GetNextOccurrence(after.UtcDateTime, Zone, inclusive: false) is { } next ? new DateTimeOffset(next, TimeSpan.Zero) : null;

    /// <summary>The times in (<paramref name="after"/>, <paramref name="until"/>], oldest first.</summary>
    public IEnumerable<DateTimeOffset> Between(DateTimeOffset after, DateTimeOffset until) =>
        until <= after
            ? []
            : expression.GetOccurrences(after.UtcDateTime, until.UtcDateTime, Zone, fromInclusive: false, toInclusive: true)
                .Select(t => new DateTimeOffset(t, TimeSpan.Zero));
}
