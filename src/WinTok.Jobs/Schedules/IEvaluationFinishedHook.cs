namespace WinTok.Jobs.Schedules;

/// <summary>
/// Called by the evaluation worker once a finished job's evaluation and metric values are recorded
/// (<see cref="Results.EvaluationsRepository.RecordAsync"/>), for every registered hook
/// (<c>IEnumerable&lt;IEvaluationFinishedHook&gt;</c>). A hook reads what it needs from the results database, must be
/// idempotent (a redelivered finish calls it again), and throws only when the database fails, so the finish is retried.
/// </summary>
public interface IEvaluationFinishedHook
{
    Task OnEvaluationRecordedAsync(Guid jobId, CancellationToken cancellationToken);
}
