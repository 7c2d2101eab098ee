namespace WinTok.Jobs.Evaluate;

/// <summary>Where evaluations keep what they reuse between runs (section <c>Evaluation</c>).</summary>
public sealed class EvaluationOptions
{
    public const string SectionName = "Evaluation";

    /// <summary>
    /// Cached Inception statistics of real images, per dataset, preprocessing and network, so a nightly run computes only
    /// the reconstructions' side. A local folder or a blob location every worker can read and write.
    /// <value>~/.cache/wintok/statistics</value>
    /// </summary>
    public string StatisticsCache { get; set; } =
        Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "wintok", "statistics");

    /// <summary>
    /// Whether the metric networks' weight files must be the published ones (their SHA-256, docs/evaluation.md). Turn it
    /// off only for weights you made yourself (the tests' formula weights); the networks still load them strictly.
    /// <value>true</value>
    /// </summary>
    public bool VerifyWeightHashes { get; set; } = true;

    /// <summary>Cached zero-shot classifiers, per text tower and protocol (local to each worker). <value>~/.cache/wintok/classifiers</value></summary>
    public string ClassifierCache { get; set; } =
        Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "wintok", "classifiers");
}
