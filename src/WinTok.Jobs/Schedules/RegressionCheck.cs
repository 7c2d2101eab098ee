using WinTok.Jobs.Evaluate;
using Microsoft.Extensions.Logging;
using WinTok.Results;

namespace WinTok.Jobs.Schedules;

/// <summary>
/// Compares each finished scheduled evaluation with its schedule's baseline: the pinned checkpoint's newest evaluation,
/// or the best value so far of each metric among the schedule's earlier evaluations; both only under the same protocol
/// on the same dataset, so only comparable numbers meet. A metric worse than its baseline by more than its threshold is
/// recorded in <c>regressions</c> (once per job and metric), logged at warning level, counted on the
/// <c>WinTok.Schedules</c> meter and posted to the schedule's webhook. Evaluations no schedule submitted are not judged.
/// </summary>
internal sealed class RegressionCheck(
    EvaluationsRepository evaluations,
    SchedulesRepository schedules,
    RegressionWebhook webhook,
    ScheduleMeter meter,
    ILogger<RegressionCheck> logger) : IEvaluationRecordedHook
{
    public async Task OnEvaluationRecordedAsync(Guid jobId, CancellationToken cancellationToken)
    {
        var evaluation = await evaluations.GetAsync(jobId, cancellationToken);
        if (evaluation?.ScheduleName is not { } name) return;
        var schedule = await schedules.GetAsync(name, cancellationToken);
        if (schedule is null) return; // removed since: nothing to compare with
        var thresholds = ScheduleDefinition.ThresholdsFromJson(schedule.ThresholdsJson);
        foreach (var (metric, value) in evaluation.Metrics.Where(m => !double.IsFinite(m.Value)))
            Log.MetricNotFinite(logger, jobId, metric, value);

        var baseline = await BaselineAsync(schedule, evaluation, thresholds, cancellationToken);
        if (baseline.Count == 0)
        {
            Log.NoBaseline(logger, jobId, name, schedule.Baseline is { } pinned ? $"{pinned} has no evaluation under this protocol" : "first evaluation");
            return;
        }
        var findings = RegressionRules.Find(evaluation.Metrics, baseline, thresholds);
        var recorded = await schedules.RecordRegressionsAsync([.. findings.Select(f => new NewRegression(jobId, name, evaluation.CheckpointSha256,
            f.Metric, f.Value, f.Baseline.Value, f.Baseline.JobId, f.Allowed, f.Direction))], cancellationToken);
        foreach (var regression in recorded)
        {
            Log.RegressionFound(logger, name, regression.Metric, evaluation.CheckpointPath, regression.Value, regression.BaselineValue,
                regression.BaselineJobId, regression.Threshold, regression.Direction, jobId);
            meter.RecordRegression(name, regression.Metric);
        }
        if (findings.Count == 0) Log.NoRegression(logger, jobId, name, thresholds.Count(t => baseline.ContainsKey(t.Metric)));

        // Every regression of the job not yet delivered, this call's or an earlier call's that failed to post.
        var pending = (await schedules.ListRegressionsAsync(new RegressionFilter(JobId: jobId), cancellationToken)).Where(r => r.NotifiedAt is null).ToList();
        if (pending.Count > 0) await webhook.PostAsync(schedule, evaluation, pending, cancellationToken);
    }

    private async Task<IReadOnlyDictionary<string, BaselineValue>> BaselineAsync(ScheduleRecord schedule, EvaluationRecord evaluation,
        IReadOnlyList<MetricThreshold> thresholds, CancellationToken cancellationToken)
    {
        if (schedule.Baseline is { } pinned)
        {
            var candidates = await evaluations.ListAsync(new EvaluationFilter(CheckpointPathPrefix: pinned, Protocol: evaluation.Protocol,
                DatasetName: evaluation.DatasetName), cancellationToken);
            var newest = candidates.LastOrDefault(e => e.CheckpointPath == pinned && e.JobId != evaluation.JobId);
            return newest is null ? new Dictionary<string, BaselineValue>() : RegressionRules.Pinned(newest);
        }
        var history = await evaluations.ListAsync(new EvaluationFilter(ScheduleName: schedule.Name, Protocol: evaluation.Protocol,
            DatasetName: evaluation.DatasetName, Limit: 100_000), cancellationToken);
        return RegressionRules.BestSoFar(history.Where(e => e.JobId != evaluation.JobId && e.CreatedAt <= evaluation.CreatedAt), thresholds);
    }
}
