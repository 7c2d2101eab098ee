using WinTok.Jobs.Schedules;

namespace WinTok.Jobs.Tests.Schedules;

public sealed class CronScheduleTests
{
    private static DateTimeOffset Utc(int month, int day, int hour, int minute = 0) => new(2026, month, day, hour, minute, 0, TimeSpan.Zero);

    [Fact]
    public void Between_DailyInBerlinAcrossSpringForward_KeepsTheWallClockTimeAndShiftsUtc()
    {
        var cron = CronSchedule.Parse("0 3 * * *", "Europe/Berlin");

        var slots = cron.Between(Utc(3, 27, 12), Utc(3, 30, 12)).ToList();

        // 03:00 CET is 02:00 UTC; from 29 March (clocks 02:00 -> 03:00) 03:00 CEST is 01:00 UTC.
        Assert.Equal([Utc(3, 28, 2), Utc(3, 29, 1), Utc(3, 30, 1)], slots);
    }

    [Fact]
    public void Between_ATimeTheSpringForwardSkips_RunsOnceAtTheFirstInstantAfterTheGap()
    {
        var cron = CronSchedule.Parse("30 2 * * *", "Europe/Berlin");

        var slots = cron.Between(Utc(3, 28, 12), Utc(3, 29, 12)).ToList();

        // 02:30 does not exist on 29 March in Berlin: it runs at 03:00 CEST, 01:00 UTC.
        Assert.Equal([Utc(3, 29, 1)], slots);
    }

    [Fact]
    public void Between_ATimeTheFallBackRepeats_RunsOnceOnly()
    {
        var cron = CronSchedule.Parse("30 2 * * *", "Europe/Berlin");

        var slots = cron.Between(Utc(10, 24, 12), Utc(10, 25, 12)).ToList();

        // 02:30 happens twice on 25 October (CEST then CET); the slot is the first, 00:30 UTC.
        Assert.Equal([Utc(10, 25, 0, 30)], slots);
    }

    [Fact]
    public void Between_IntervalFieldAcrossFallBack_FollowsTheWallClock()
    {
        var cron = CronSchedule.Parse("0 * * * *", "America/New_York");

        // 1 November 2026: 02:00 EDT falls back to 01:00 EST; an hourly schedule runs at every real hour.
        var slots = cron.Between(Utc(11, 1, 4, 30), Utc(11, 1, 7, 30)).ToList();

        Assert.Equal([Utc(11, 1, 5), Utc(11, 1, 6), Utc(11, 1, 7)], slots);
    }

    [Fact]
    public void Between_ExcludesItsStartAndIncludesItsEnd()
    {
        var cron = CronSchedule.Parse("0 3 * * *", "Etc/UTC");

        Assert.Equal([Utc(6, 2, 3)], cron.Between(Utc(6, 1, 3), Utc(6, 2, 3)));
        Assert.Empty(cron.Between(Utc(6, 2, 3), Utc(6, 2, 3)));
    }

    [Fact]
    public void Parse_WithSixFields_ReadsSeconds() =>
        Assert.Equal(Utc(6, 1, 3, 0).AddSeconds(30), CronSchedule.Parse("30 0 3 * * *", "Etc/UTC").Next(Utc(6, 1, 2)));

    [Fact]
    public void Parse_AMacro_IsAccepted() =>
        Assert.Equal(Utc(6, 2, 0), CronSchedule.Parse("@daily", "Etc/UTC").Next(Utc(6, 1, 12)));

    [Fact]
    public void Parse_WhenTheExpressionIsBad_SaysWhatACronExpressionIs()
    {
        var error = Assert.Throws<ArgumentException>(() => CronSchedule.Parse("0 25 * * *", "Etc/UTC"));

        Assert.Contains("'0 25 * * *' is not a cron expression", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_WhenTheZoneIsUnknown_NamesIt()
    {
        var error = Assert.Throws<ArgumentException>(() => CronSchedule.Parse("0 3 * * *", "Mars/Olympus"));

        Assert.Contains("'Mars/Olympus' is not a time zone", error.Message, StringComparison.Ordinal);
    }
}
