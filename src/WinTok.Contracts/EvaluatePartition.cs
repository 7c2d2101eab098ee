namespace WinTok.Contracts;

/// <summary>Command: evaluate one partition of a dataset and commit its partial statistics.</summary>
/// <param name="JobId">The evaluation job; its spec says which checkpoint, metrics and protocol.</param>
/// <param name="Partition">The dataset partition index; its images are recorded with the partition at submission.</param>
/// <param name="Attempt">1 on submission, incremented by each retry of the job.</param>
public sealed record EvaluatePartition(Guid JobId, int Partition, int Attempt) : IJobMessage;
