using WinTok.Jobs.Schedules;
using WinTok.Results;

namespace WinTok.Jobs.Tests.Schedules;

public sealed class SlotRulesTests
{
    private static readonly DateTimeOffset Now = new(2026, 6, 10, 3, 1, 0, TimeSpan.Zero);
    private static readonly TimeSpan Grace = TimeSpan.FromMinutes(5);

    private static DateTimeOffset DaysAgo(int days) => new DateTimeOffset(2026, 6, 10, 3, 0, 0, TimeSpan.Zero).AddDays(-days);

    [Theory]
    [InlineData(MissedSlotPolicy.RunOnce)]
    [InlineData(MissedSlotPolicy.Skip)]
    public void Decide_ASlotFoundWithinTheGrace_Fires(string policy) =>
        Assert.Equal([new SlotDecision(DaysAgo(0), SlotAction.Fire)], SlotRules.Decide([DaysAgo(0)], Now, Grace, policy));

    [Fact]
    public void Decide_SlotsMissedWithRunOnce_FiresTheNewestAndRecordsTheOthersMissed()
    {
        var decisions = SlotRules.Decide([DaysAgo(3), DaysAgo(2), DaysAgo(1)], Now, Grace, MissedSlotPolicy.RunOnce);

        Assert.Equal(
            [new SlotDecision(DaysAgo(3), SlotAction.RecordMissed), new SlotDecision(DaysAgo(2), SlotAction.RecordMissed),
             new SlotDecision(DaysAgo(1), SlotAction.Fire)],
            decisions);
    }

    [Fact]
    public void Decide_SlotsMissedWithSkip_RecordsEverySkippedAndFiresNone()
    {
        var decisions = SlotRules.Decide([DaysAgo(2), DaysAgo(1)], Now, Grace, MissedSlotPolicy.Skip);

        Assert.All(decisions, d => Assert.Equal(SlotAction.RecordSkipped, d.Action));
        Assert.Equal(2, decisions.Count);
    }

    [Fact]
    public void Decide_MissedSlotsBeforeAnOnTimeOne_FiresOnlyTheOnTimeOne()
    {
        var decisions = SlotRules.Decide([DaysAgo(1), DaysAgo(0)], Now, Grace, MissedSlotPolicy.RunOnce);

        Assert.Equal([new SlotDecision(DaysAgo(1), SlotAction.RecordMissed), new SlotDecision(DaysAgo(0), SlotAction.Fire)], decisions);
    }

    [Fact]
    public void Decide_ASlotLateByExactlyTheGrace_IsStillOnTime() =>
        Assert.Equal(SlotAction.Fire, SlotRules.Decide([Now - Grace], Now, Grace, MissedSlotPolicy.Skip).Single().Action);

    [Fact]
    public void Decide_NothingDue_DecidesNothing() => Assert.Empty(SlotRules.Decide([], Now, Grace, MissedSlotPolicy.RunOnce));
}
