namespace WinTok.Contracts;

/// <summary>Command: tokenize one input partition of a job and commit its shard.</summary>
/// <param name="JobId">The job (results database <c>jobs.id</c>); its spec says what to tokenize and how.</param>
/// <param name="Partition">
/// The input partition index; the shard name derives from it, never from a worker or rank. Which inputs it holds is
/// recorded with the partition in the results database at submission, so a retry reads exactly the same inputs.
/// </param>
/// <param name="Attempt">1 on submission, incremented by each retry of the job.</param>
public sealed record TokenizePartition(Guid JobId, int Partition, int Attempt) : IJobMessage;
