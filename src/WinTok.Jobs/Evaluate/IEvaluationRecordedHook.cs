namespace WinTok.Jobs.Evaluate;

/// <summary>
/// Told after an evaluation job's numbers are recorded in the results database (e.g. the schedules' regression check),
/// at every finish of the job until it is marked succeeded: a finisher that dies, or a hook that fails, leaves the job
/// to the redelivered message, whose finish calls every hook again. Register any number; each must be idempotent.
/// </summary>
public interface IEvaluationRecordedHook
{
    Task OnEvaluationRecordedAsync(Guid jobId, CancellationToken cancellationToken);
}
