using WinTok.Results;

namespace WinTok.Jobs.Schedules;

/// <summary>What the scheduler does with one due slot.</summary>
internal enum SlotAction
{
    /// <summary>Evaluate now.</summary>
    Fire,

    /// <summary>Record it as missed: a newer slot fires in its place (policy run-once).</summary>
    RecordMissed,

    /// <summary>Record it as skipped (policy skip).</summary>
    RecordSkipped,
}

internal sealed record SlotDecision(DateTimeOffset SlotAt, SlotAction Action);

/// <summary>The scheduler's decisions about due slots, as pure functions.</summary>
internal static class SlotRules
{
    /// <summary>
    /// Decides each due slot (oldest first). A slot found within <paramref name="missedAfter"/> of its time is on time
    /// and fires. Older ones were missed while no scheduler ran: with <see cref="MissedSlotPolicy.Skip"/> each is
    /// recorded as skipped; with <see cref="MissedSlotPolicy.RunOnce"/> the newest of them fires once, unless an
    /// on-time slot fires anyway, and the rest are recorded as missed. Every due slot is recorded either way.
    /// </summary>
    public static IReadOnlyList<SlotDecision> Decide(IReadOnlyList<DateTimeOffset> due, DateTimeOffset now, TimeSpan missedAfter, string policy)
    {
        var late = due.Where(slot => now - slot > missedAfter).ToList();
        var onTime = due.Where(slot => now - slot <= missedAfter).ToList();
        DateTimeOffset? runLate = policy == MissedSlotPolicy.RunOnce && onTime.Count == 0 && late.Count > 0 ? late.Max() : null;
        return due.Order().Select(slot => new SlotDecision(slot,
            onTime.Contains(slot) || slot == runLate ? SlotAction.Fire
            : policy == MissedSlotPolicy.Skip ? SlotAction.RecordSkipped
            : SlotAction.RecordMissed)).ToList();
    }
}
