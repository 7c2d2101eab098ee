using System.Diagnostics.Metrics;

namespace WinTok.Jobs.Schedules;

/// <summary>The <c>WinTok.Schedules</c> meter: slots by outcome and regressions by metric, for the metrics endpoint and alerts.</summary>
internal sealed class ScheduleMeter : IDisposable
{
    public const string Name = "WinTok.Schedules";

    private readonly Meter meter;
    private readonly Counter<long> slots;
    private readonly Counter<long> regressions;

    public ScheduleMeter(IMeterFactory meters)
    {
        meter = meters.Create(Name);
        slots = meter.CreateCounter<long>("wintok.schedules.slots", "{slot}", "Schedule slots recorded, by schedule and outcome");
        regressions = meter.CreateCounter<long>("wintok.schedules.regressions", "{regression}",
            "Metrics of scheduled evaluations found worse than their baseline beyond the threshold, by schedule and metric");
    }

    public void RecordSlots(string schedule, string outcome, int count) =>
        slots.Add(count, new KeyValuePair<string, object?>("schedule", schedule), new KeyValuePair<string, object?>("outcome", outcome));

    public void RecordRegression(string? schedule, string metric) =>
        regressions.Add(1, new KeyValuePair<string, object?>("schedule", schedule), new KeyValuePair<string, object?>("metric", metric));

    public void Dispose() => meter.Dispose();
}
