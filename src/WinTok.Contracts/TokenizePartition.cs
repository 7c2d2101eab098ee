namespace WinTok.Contracts;

/// <summary>Command: tokenize one input partition of a job and commit its shard.</summary>
/// <param name="JobId">The job (results database <c>jobs.id</c>).</param>
/// <param name="Partition">The input partition index; the shard name derives from it, never from a worker or rank.</param>
/// <param name="Attempt">1 on submission, incremented by each retry of the job.</param>
/// <param name="PartitionSpecJson">
/// The partition's work description as JSON (input URIs, checkpoint, preprocessing, output location); its schema belongs
/// to the tokenize handler, the queue only carries it.
/// </param>
public sealed record TokenizePartition(Guid JobId, int Partition, int Attempt, string PartitionSpecJson) : IJobMessage;
