namespace WinTok.Contracts;

/// <summary>
/// Command: run (or resume) a training job. Its one partition is the whole run: the worker that claims it holds it
/// for hours, renewing its lease, and a redelivery after a dead worker resumes from the newest checkpoint.
/// </summary>
/// <param name="JobId">The training job; its spec holds the configuration, weights and data.</param>
/// <param name="Partition">Always 0.</param>
/// <param name="Attempt">1 on submission, incremented by each retry of the job.</param>
public sealed record TrainRun(Guid JobId, int Partition, int Attempt) : IJobMessage;
