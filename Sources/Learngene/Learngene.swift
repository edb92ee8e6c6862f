/// Learngene: condensing a trained ancestry DiT into reusable learngenes (KIND, FINE, WAVE)
/// and initializing descendant DiTs of other sizes from them. ../shared/docs/methods.md §2–§4.
public enum LearngeneModule {}
