namespace WinTok.Jobs.Evaluate;

/// <summary>
/// Told once per evaluation job, after its numbers are recorded in the results database (e.g. the schedules' regression
/// check). Register any number; each must be idempotent in case a crash makes it run twice.
/// </summary>
public interface IEvaluationRecordedHook
{
    Task OnEvaluationRecordedAsync(Guid jobId, CancellationToken cancellationToken);
}
